"""The one policy module: every authorization decision goes through here (DESIGN §3, §4, §12).

`can_access` / `can_run_operation` answer with a bool; `ensure_access` / `ensure_operation` raise.
Reads of a thing the caller may not see are answered 404 by the callers (`ensure_visible`).

Three rules beyond "does a binding allow it":
- the escalation rule (`ensure_may_change`): a write that changes what anyone holds needs the
  writer to hold every binding it grants *or takes away*, and no write may leave nobody able to
  edit RBAC (`someone_can_edit_rbac`);
- token reach (`token_reach`, `can_run_server`): which servers an McpToken may use, narrowed by
  its own run bindings, its parent's reach and what its owner may run now — never widened by an
  RBAC edit;
- token permissions (`token_bindings`): what RBAC grants a token, only where its owner (now) and
  its parent hold it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    # McpTokens: the servers of its project it may use through MCP (DESIGN §4 tool scoping).
    reach: frozenset[str] | None = None

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


def ensure_may_grant(writer: Principal, bindings: Iterable[Binding], *, what: str = "this write") -> None:
    """The escalation rule for one set of bindings: ForbiddenError naming the first the writer
    does not hold itself."""
    for binding in sorted(set(bindings), key=str):
        if not covers(writer, binding):
            raise ForbiddenError(
                f"{what} grants or takes away {binding}, which {describe(writer)} does not hold",
                details={"binding": str(binding)},
            )


Holdings = Mapping[str, frozenset[Binding]]
"""What each principal holds, by a stable key (a user id, or an `McpToken:<sha>` subject)."""


def changed_bindings(before: Holdings, after: Holdings) -> set[Binding]:
    """Every binding some principal gains or loses between two snapshots."""
    changed: set[Binding] = set()
    for key in before.keys() | after.keys():
        changed |= before.get(key, frozenset()) ^ after.get(key, frozenset())
    return changed


def ensure_may_change(writer: Principal, before: Holdings, after: Holdings, *, what: str) -> None:
    """The escalation rule (DESIGN §12, Kubernetes'): a write that changes what anyone holds needs
    the writer to hold every binding it grants or takes away."""
    ensure_may_grant(writer, changed_bindings(before, after), what=what)


def ensure_may_act_as(writer: Principal, target: Principal, *, what: str) -> None:
    """Changing another user's password, e-mail or `disabled` is acting as them: the writer must
    hold everything they hold. Oneself is always allowed."""
    if writer.kind == "user" and writer.user_id is not None and writer.user_id == target.user_id:
        return
    ensure_may_grant(writer, target.bindings, what=what)


def someone_can_edit_rbac(holdings: Iterable[frozenset[Binding]]) -> bool:
    """Whether at least one of these principals may edit every RbacDefinition."""
    return any(can_access(Principal(kind="user", bindings=tuple(b)), "edit", "rbac") for b in holdings)


def may_read_secret_values(principal: Principal, secret: str) -> bool:
    """Plaintext of a secret (`--show-values`, or a server spec that hands it to a process or a
    URL) needs `edit` on it; `view` shows masked values only."""
    return can_access(principal, "edit", "secrets", secret)


def _scopes_servers(bindings: Iterable[Binding]) -> bool:
    return any(not b.is_operation and b.role == "run" and b.resource in ("servers", "*") for b in bindings)


def token_reach(
    project_servers: Iterable[str], scopes: Iterable[Iterable[Binding]], owner: Principal
) -> frozenset[str]:
    """A token's MCP reach (DESIGN §4): the project's servers ∩ what its owner may run now ∩, for
    the token and each token above it, the servers its own run bindings name (when it has any).
    `scopes` are the immutable bindings kept on each token of the chain, never an RbacDefinition,
    so editing or deleting a definition cannot widen a token."""
    narrowing = [tuple(scope) for scope in scopes if _scopes_servers(scope)]
    return frozenset(
        server
        for server in project_servers
        if can_access(owner, "run", "servers", server)
        and all(any(binding_allows(b, "run", "servers", server) for b in scope) for scope in narrowing)
    )


def token_bindings(granted: Iterable[Binding], ceilings: Iterable[Principal]) -> tuple[Binding, ...]:
    """A token's REST permissions: what RBAC grants its subject, kept only where each ceiling (its
    owner now, and the token that minted it) holds it too — a demoted owner narrows every token."""
    limits = tuple(ceilings)
    return tuple(b for b in granted if all(covers(limit, b) for limit in limits))


def can_run_server(principal: Principal, server: str) -> bool:
    """Whether the principal may call `server`'s tools, resources and prompts: an McpToken within
    its reach, a user by its `run` bindings."""
    if principal.kind == "token":
        return principal.reach is not None and server in principal.reach
    return can_access(principal, "run", "servers", server)


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
