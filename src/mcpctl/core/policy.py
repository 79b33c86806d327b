"""The one policy module: every authorization decision goes through here (DESIGN §3).

`can_access` / `can_run_operation` answer with a bool; `ensure_access` / `ensure_operation` raise.
Reads of a thing the caller may not see are answered 404 by the callers (`ensure_visible`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mcpctl.core.errors import ForbiddenError, NotFoundError
from mcpctl.core.rbac import Binding


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with the groups they are in) and the bindings that apply to them."""

    kind: str  # "user" | "token" | "anonymous"
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    groups: frozenset[str] = frozenset()
    bindings: tuple[Binding, ...] = field(default_factory=tuple)
    # McpToken principals: the token's identity, its one project and the user who created it.
    token_id: str | None = None
    token_name: str | None = None
    token_sha: str | None = None
    project: str | None = None
    owner: str | None = None
    token_expires_at: datetime | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def subjects(self) -> frozenset[str]:
        """The RBAC subjects this principal matches."""
        if self.kind == "token":
            return frozenset({f"McpToken:{self.token_sha}"})
        subjects = {f"Group:{g}" for g in self.groups}
        if self.email:
            subjects.add(f"User:{self.email}")
        return frozenset(subjects)


ANONYMOUS = Principal(kind="anonymous")


def _role_grants(held: str, wanted: str) -> bool:
    # `edit` implies `view`; nothing else implies anything.
    return held == wanted or (held == "edit" and wanted == "view")


def binding_allows(binding: Binding, role: str, resource: str, name: str | None) -> bool:
    """Whether one resource binding grants `role` on `resource` (object `name`, or any if None).

    A binding narrowed to one name grants nothing on the collection as a whole (name None) except
    for listing, which callers filter object by object.
    """
    if binding.is_operation or not _role_grants(binding.role, role):
        return False
    if binding.resource not in ("*", resource):
        return False
    return binding.name is None or binding.name == name


def can_access(principal: Principal, role: str, resource: str, name: str | None = None) -> bool:
    """Whether the principal holds `role` on `resource` (and on the object `name` when given)."""
    return any(binding_allows(b, role, resource, name) for b in principal.bindings)


def can_list(principal: Principal, resource: str) -> bool:
    """Whether the principal may see at least some objects of `resource` (a name-narrowed view)."""
    return any(
        not b.is_operation and _role_grants(b.role, "view") and b.resource in ("*", resource)
        for b in principal.bindings
    )


def can_run_operation(principal: Principal, action: str) -> bool:
    """Whether the principal may run the operation `action` (logs, backup, impersonate, audit)."""
    return any(b.is_operation and b.action in ("*", action) for b in principal.bindings)


def covers(principal: Principal, binding: Binding) -> bool:
    """Whether everything `binding` grants, the principal already holds (the creator ceiling)."""
    if binding.is_operation:
        return binding.action is not None and can_run_operation(principal, binding.action)
    assert binding.resource is not None
    roles = ("edit", "view") if binding.role == "edit" else (binding.role,)
    if binding.resource == "*":
        return all(
            any(
                b.resource == "*" and b.name in (None, binding.name) and _role_grants(b.role, r)
                for b in principal.bindings
                if not b.is_operation
            )
            for r in roles
        )
    return all(can_access(principal, r, binding.resource, binding.name) for r in roles)


def ensure_access(principal: Principal, role: str, resource: str, name: str | None = None) -> None:
    """Raise ForbiddenError unless the principal holds `role` on `resource`/`name`."""
    if not can_access(principal, role, resource, name):
        target = f"{resource}/{name}" if name else resource
        raise ForbiddenError(
            f"{describe(principal)} cannot {role} {target}",
            details={"role": role, "resource": resource, "name": name},
        )


def ensure_visible(principal: Principal, resource: str, name: str, *, kind: str) -> None:
    """Raise NotFoundError (not 403) when the principal may not view the object."""
    if not can_access(principal, "view", resource, name):
        raise NotFoundError(f'{resource} "{name}" not found', details={"kind": kind, "name": name})


def ensure_operation(principal: Principal, action: str) -> None:
    """Raise ForbiddenError unless the principal may run operation `action`."""
    if not can_run_operation(principal, action):
        raise ForbiddenError(
            f"{describe(principal)} cannot run operation {action!r}", details={"action": action}
        )


def describe(principal: Principal) -> str:
    """A short, secret-free description of the principal for messages."""
    if principal.kind == "user":
        return f'user "{principal.email}"'
    if principal.kind == "token":
        return f'token "{principal.token_name}" of project "{principal.project}"'
    return "anonymous"


def bindings_for(
    subjects: Iterable[str], definitions: Iterable[tuple[Iterable[str], Iterable[Binding]]]
) -> tuple[Binding, ...]:
    """Union of the bindings of every definition one of whose subjects is in `subjects`."""
    wanted = set(subjects)
    out: set[Binding] = set()
    for def_subjects, def_bindings in definitions:
        if wanted.intersection(def_subjects):
            out.update(def_bindings)
    return tuple(sorted(out, key=str))
