"""Table columns per kind for `get` (table and wide). First column NAME, AGE last."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mcpctl.cli.timefmt import format_age, format_duration_ms, format_relative, format_timestamp, parse_time
from mcpctl.core.errors import InvalidError
from mcpctl.core.rbac import binding_from_dict

NONE = "<none>"
Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Obj, datetime], str]
    wide: bool = False


def _section(obj: Obj, section: str) -> Mapping[str, Any]:
    value = obj.get(section)
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _spec(key: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, _now: _text(_section(obj, "spec").get(key))


def _status(key: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, _now: _text(_section(obj, "status").get(key))


def _count(section: str, key: str) -> Callable[[Obj, datetime], str]:
    def value(obj: Obj, _now: datetime) -> str:
        items = _section(obj, section).get(key)
        return str(len(items)) if isinstance(items, list | dict) else "0"

    return value


def _name(obj: Obj, _now: datetime) -> str:
    return _text(_section(obj, "metadata").get("name"))


def _age(obj: Obj, now: datetime) -> str:
    return format_age(_section(obj, "metadata").get("createdAt"), now)


def labels_text(obj: Obj) -> str:
    labels = _section(_section(obj, "metadata"), "labels")
    return ",".join(f"{key}={value}" for key, value in labels.items()) or NONE


def binding_text(binding: Any) -> str:
    """A role binding in the `--roleBindings` grammar (`role:view,resource:servers`)."""
    if isinstance(binding, Mapping):
        try:
            return str(binding_from_dict(binding))
        except InvalidError:
            pass
    return str(binding)


def _ago(value: Any, now: datetime) -> str:
    return f"{format_age(value, now)} ago" if value else NONE


def _server_target(obj: Obj, _now: datetime) -> str:
    spec = _section(obj, "spec")
    if spec.get("transport") == "http":
        return _text(spec.get("url"))
    args = spec.get("args")
    parts = [spec.get("command") or "", *(args if isinstance(args, list) else [])]
    return _text(" ".join(str(part) for part in parts).strip())


def _replicas(obj: Obj, _now: datetime) -> str:
    spec = _section(obj, "spec")
    return "-" if spec.get("transport") == "http" else _text(spec.get("replicas", 1))


def _secret_keys(obj: Obj, _now: datetime) -> str:
    keys = _section(obj, "status").get("keys")
    if not isinstance(keys, list):
        keys = sorted(_section(obj, "spec").get("data") or {})
    return _text(keys)


def _bindings(obj: Obj, _now: datetime) -> str:
    bindings = _section(obj, "spec").get("roleBindings") or []
    return ";".join(binding_text(b) for b in bindings) or NONE


def token_state(obj: Obj, now: datetime) -> str:
    """An McpToken's status: mcpd's `status.status`, else worked out from revokedAt/expiresAt."""
    status = _section(obj, "status")
    if isinstance(status.get("status"), str) and status["status"]:
        return str(status["status"])
    if status.get("revokedAt"):
        return "revoked"
    expires = parse_time(status.get("expiresAt"))
    return "expired" if expires is not None and expires <= now else "active"


def _token_time(key: str, empty: str) -> Callable[[Obj, datetime], str]:
    def value(obj: Obj, now: datetime) -> str:
        when = _section(obj, "status").get(key)
        if not when:
            return empty
        return format_age(when, now) if key == "lastUsedAt" else format_relative(when, now)

    return value


def _stage_types(obj: Obj, _now: datetime) -> str:
    stages = _section(obj, "spec").get("stages")
    types = [str(s.get("type")) for s in stages if isinstance(s, Mapping)] if isinstance(stages, list) else []
    return ",".join(types) or NONE


def _built_in_age(obj: Obj, now: datetime) -> str:
    return "-" if _section(obj, "status").get("builtIn") is True else _age(obj, now)


_LABELS = Column("LABELS", lambda obj, _now: labels_text(obj), wide=True)
NAME, AGE = Column("NAME", _name), Column("AGE", _age)

_COLUMNS: dict[str, tuple[Column, ...]] = {
    "User": (
        NAME,
        Column("EMAIL", _spec("email")),
        Column("DISABLED", _spec("disabled")),
        Column("DISPLAY NAME", _spec("displayName"), wide=True),
        Column("GROUPS", _status("groups"), wide=True),
        AGE,
        _LABELS,
    ),
    "Group": (
        NAME,
        Column("MEMBERS", _count("spec", "members")),
        Column("EMAILS", _spec("members"), wide=True),
        AGE,
        _LABELS,
    ),
    "RbacDefinition": (
        NAME,
        Column("SUBJECTS", _spec("subjects")),
        Column("BINDINGS", _count("spec", "roleBindings")),
        Column("ROLE BINDINGS", _bindings, wide=True),
        AGE,
        _LABELS,
    ),
    "Project": (
        NAME,
        Column("SERVERS", _spec("servers")),
        Column("PROXY MODEL", _spec("proxyModel")),
        Column("PREFIX MODE", _spec("toolPrefixMode"), wide=True),
        Column("SEPARATOR", _spec("toolNameSeparator"), wide=True),
        AGE,
        _LABELS,
    ),
    "Server": (
        NAME,
        Column("TRANSPORT", _spec("transport")),
        Column("REPLICAS", _replicas),
        Column("PROJECTS", _status("projects")),
        Column("COMMAND/URL", _server_target, wide=True),
        AGE,
        _LABELS,
    ),
    "Secret": (NAME, Column("KEYS", _secret_keys), AGE, _LABELS),
    "Prompt": (
        NAME,
        Column("PROJECT", lambda obj, _now: _text(_section(obj, "metadata").get("project"))),
        Column("PRIORITY", _spec("priority")),
        Column("TAGS", _spec("tags")),
        Column("BYTES", _status("bytes")),
        AGE,
        Column("DESCRIPTION", _spec("description"), wide=True),
        _LABELS,
    ),
    "ProxyModel": (
        NAME,
        Column("STAGES", _stage_types),
        Column("BUILT-IN", _status("builtIn")),
        Column("PROJECTS", _status("projects"), wide=True),
        Column("AGE", _built_in_age),
        Column("DESCRIPTION", _spec("description"), wide=True),
        _LABELS,
    ),
    "Instance": (
        NAME,
        Column("SERVER", _spec("server")),
        Column("STATUS", _status("status")),
        Column("HEALTH", _status("healthStatus")),
        Column("RESTARTS", _status("restarts")),
        Column("PID", _status("pid")),
        AGE,
        Column(
            "LAST PROBE", lambda obj, now: _ago(_section(obj, "status").get("lastProbeAt"), now), wide=True
        ),
        Column("REASON", _status("reason"), wide=True),
    ),
    "McpToken": (
        NAME,
        Column("PROJECT", lambda obj, _now: _text(_section(obj, "metadata").get("project"))),
        Column("PREFIX", _status("prefix")),
        Column("CREATED", _age),
        Column("LAST USED", _token_time("lastUsedAt", "never")),
        Column("EXPIRES", _token_time("expiresAt", "never")),
        Column("STATUS", token_state),
        Column("RBAC", _spec("rbac"), wide=True),
        Column("OWNER", _status("owner"), wide=True),
        Column("DESCRIPTION", _spec("description"), wide=True),
    ),
    "AuditEvent": (
        Column("TIME", lambda obj, _now: format_timestamp(_section(obj, "spec").get("time")) or NONE),
        Column("KIND", _spec("kind")),
        Column("USER", _spec("user")),
        Column("TOKEN", _spec("tokenName")),
        Column("PROJECT", _spec("project")),
        Column("SERVER", _spec("server")),
        Column("TARGET", _spec("target")),
        Column("OUTCOME", _spec("outcome")),
        Column(
            "DURATION", lambda obj, _now: format_duration_ms(_section(obj, "spec").get("durationMs")) or NONE
        ),
        Column("CLIENT", _spec("clientAddr"), wide=True),
        Column("REQUEST ID", _spec("requestId"), wide=True),
        Column("ID", _name, wide=True),
    ),
}


def columns_for(kind: str) -> tuple[Column, ...]:
    """The columns for a kind; NAME and AGE for kinds without their own."""
    return _COLUMNS.get(kind, (NAME, AGE, _LABELS))
