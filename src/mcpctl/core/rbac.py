"""RBAC bindings and the `--roleBindings` / `--bind` grammar (DESIGN §3).

One parser, shared by `create rbac` and `create mcptoken`, and one validator for bindings arriving as
JSON objects. Both raise UsageError/InvalidError naming the bad part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcpctl.core.errors import InvalidError, UsageError
from mcpctl.core.kinds import RBAC_RESOURCES
from mcpctl.core.names import NAME_RE

ROLES: tuple[str, ...] = ("view", "create", "edit", "delete", "run")
ACTIONS: tuple[str, ...] = ("logs", "backup", "impersonate", "audit", "*")
SUBJECT_KINDS: tuple[str, ...] = ("User", "Group", "McpToken")


@dataclass(frozen=True)
class Binding:
    """A resource binding (`role` on `resource`, optionally one `name`) or an operation binding
    (`role` is always `run`, `action` set, `resource` None)."""

    role: str
    resource: str | None = None
    name: str | None = None
    action: str | None = None

    @property
    def is_operation(self) -> bool:
        return self.action is not None

    def to_dict(self) -> dict[str, str]:
        if self.action is not None:
            return {"role": "run", "action": self.action}
        out = {"role": self.role, "resource": str(self.resource)}
        if self.name is not None:
            out["name"] = self.name
        return out

    def __str__(self) -> str:
        if self.action is not None:
            return f"action:{self.action}"
        text = f"role:{self.role},resource:{self.resource}"
        return f"{text},name:{self.name}" if self.name is not None else text


def _check_parts(
    role: str | None,
    resource: str | None,
    name: str | None,
    action: str | None,
    *,
    error: type[InvalidError],
    where: str,
) -> Binding:
    if action is not None:
        if resource is not None or name is not None:
            raise error(f"{where}: 'action' cannot be combined with 'resource' or 'name'")
        if role is not None and role != "run":
            raise error(f"{where}: an action binding has role 'run', not {role!r}")
        if action not in ACTIONS:
            raise error(f"{where}: unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
        return Binding(role="run", action=action)
    if role is None:
        raise error(f"{where}: missing 'role'")
    if resource is None:
        raise error(f"{where}: missing 'resource'")
    if role not in ROLES:
        raise error(f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    if resource != "*" and resource not in RBAC_RESOURCES:
        raise error(
            f"{where}: unknown resource {resource!r} (expected a plural noun such as 'servers' or '*')"
        )
    if name is not None and not NAME_RE.fullmatch(name):
        raise error(f"{where}: invalid name {name!r} (must be a DNS label)")
    return Binding(role=role, resource=resource, name=name)


_KEYS = ("role", "resource", "name", "action")


def parse_binding(text: str) -> Binding:
    """Parse `role:<role>,resource:<res|*>[,name:<n>]` or `action:<op>`.

    Raises UsageError naming the bad part for unknown or duplicate keys, a missing role or resource,
    `action` mixed with `resource`, an unknown role/resource/action, or an empty value.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError(
            "empty binding: expected 'role:<role>,resource:<resource>[,name:<name>]' or 'action:<action>'"
        )
    where = f"binding {text!r}"
    parts: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        key, sep, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            raise UsageError(f"{where}: {item!r} is not of the form key:value")
        if key not in _KEYS:
            raise UsageError(f"{where}: unknown key {key!r} (expected role, resource, name or action)")
        if key in parts:
            raise UsageError(f"{where}: duplicate key {key!r}")
        if not value:
            raise UsageError(f"{where}: empty value for {key!r}")
        parts[key] = value
    return _check_parts(
        parts.get("role"),
        parts.get("resource"),
        parts.get("name"),
        parts.get("action"),
        error=UsageError,
        where=where,
    )


def binding_from_dict(data: Mapping[str, Any], *, where: str = "roleBinding") -> Binding:
    """Validate a binding given as a JSON object ({role, resource, name?} or {role?, action})."""
    unknown = set(data) - set(_KEYS)
    if unknown:
        raise InvalidError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    values: dict[str, str | None] = {}
    for key in _KEYS:
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidError(f"{where}: {key!r} must be a non-empty string")
        values[key] = value
    return _check_parts(
        values["role"], values["resource"], values["name"], values["action"], error=InvalidError, where=where
    )


def parse_subject(text: str) -> tuple[str, str]:
    """Parse `User:<email>`, `Group:<name>` or `McpToken:<sha256-hex>` into (kind, value)."""
    kind, sep, value = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not sep or not value:
        raise InvalidError(
            f"invalid subject {text!r}: expected Kind:name with Kind one of {', '.join(SUBJECT_KINDS)}"
        )
    if kind not in SUBJECT_KINDS:
        raise InvalidError(
            f"invalid subject {text!r}: unknown kind {kind!r} (expected one of {', '.join(SUBJECT_KINDS)})"
        )
    if kind == "Group" and not NAME_RE.fullmatch(value):
        raise InvalidError(f"invalid subject {text!r}: group name must be a DNS label")
    if kind == "McpToken" and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
        raise InvalidError(f"invalid subject {text!r}: expected a SHA-256 hex digest")
    if kind == "User":
        if "@" not in value or any(c.isspace() for c in value):
            raise InvalidError(f"invalid subject {text!r}: expected User:<email>")
        value = value.lower()
    return kind, value
