"""The escalation rule applied to a unit of work (DESIGN §12).

A write that may change what anyone holds (users, groups, RBAC definitions) runs inside
`guarded(...)`: what every principal holds is read before and after the write, in the same
transaction, and the policy module decides — the writer must hold every binding anyone gained or
lost, and the result must leave some enabled user able to edit RBAC. One check, whatever was
written and however (POST, PUT/apply, PATCH, DELETE); it also covers effects that no single field
shows, such as a new user or a renamed e-mail picking up grants an RbacDefinition already names.

Holdings are kept per user *and* per subject, so a grant planted for a group with no members or an
address with no user yet (and one taken from a disabled user) counts as a change too.

Guarded writes are serialized (SQLite has one writer; PostgreSQL takes a transaction-scoped
advisory lock) and the writer is re-read inside the transaction: two writes racing each other, or a
writer demoted while its request waited, cannot slip between the snapshots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.errors import ConflictError
from mcpctl.core.policy import Holdings, Principal, ensure_may_change, someone_can_edit_rbac
from mcpctl.core.rbac import Binding, binding_from_dict
from mcpctl.mcpd.auth import reload_principal
from mcpctl.storage import tables

USER_KEY = "User#"  # holdings of a user are keyed by its id (an e-mail rename is the same user)
SUBJECT_KEY = "Subject#"  # and of every RBAC subject, whoever it names now
# pg_advisory_xact_lock key of guarded writes and of token mints ("mcpctl" in ASCII).
PERMISSIONS_LOCK = 0x6D6370637446


async def serialize(session: AsyncSession) -> None:
    """Hold the permission-writes lock until this transaction ends (PostgreSQL; SQLite's single
    writer already serializes every write transaction)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PERMISSIONS_LOCK})


async def holdings(session: AsyncSession) -> dict[str, frozenset[Binding]]:
    """What every enabled user (by id) and every McpToken subject holds through RBAC now.

    A disabled user holds nothing (it cannot act), so disabling or enabling one is a change of
    holdings like any other. Read with plain column queries so that changes flushed in this
    transaction are seen, whatever the ORM has cached."""
    by_subject: dict[str, set[Binding]] = defaultdict(set)
    rows = await session.execute(sa.select(tables.RbacDefinition.id, tables.RbacDefinition.role_bindings))
    definitions: dict[str, list[dict[str, str]]] = {row[0]: row[1] for row in rows}
    for definition_id, subject in await session.execute(
        sa.select(tables.RbacSubject.definition_id, tables.RbacSubject.subject)
    ):
        by_subject[subject].update(binding_from_dict(b) for b in definitions.get(definition_id) or [])
    groups: dict[str, set[str]] = defaultdict(set)
    for user_id, group in await session.execute(
        sa.select(tables.GroupMember.user_id, tables.Group.name).join(
            tables.Group, tables.Group.id == tables.GroupMember.group_id
        )
    ):
        groups[user_id].add(group)
    held: dict[str, frozenset[Binding]] = {}
    for user_id, email, disabled in await session.execute(
        sa.select(tables.User.id, tables.User.email, tables.User.disabled)
    ):
        subjects = [f"User:{email}", *(f"Group:{g}" for g in groups[user_id])]
        bindings = frozenset(b for s in subjects for b in by_subject.get(s, ()))
        held[USER_KEY + user_id] = frozenset() if disabled else bindings
    for subject, granted in by_subject.items():
        held[SUBJECT_KEY + subject] = frozenset(granted)
    return held


def _user_holdings(held: Holdings) -> list[frozenset[Binding]]:
    return [bindings for key, bindings in held.items() if key.startswith(USER_KEY)]


@asynccontextmanager
async def guarded(session: AsyncSession, writer: Principal, *, what: str) -> AsyncIterator[None]:
    """Run a write; before it commits, refuse it (ForbiddenError, ConflictError) if it breaks the
    escalation rule or leaves nobody able to edit RBAC. The caller's transaction rolls back."""
    await serialize(session)
    writer = await reload_principal(session, writer)
    before = await holdings(session)
    yield
    await session.flush()
    after = await holdings(session)
    ensure_may_change(writer, before, after, what=what)
    if someone_can_edit_rbac(_user_holdings(before)) and not someone_can_edit_rbac(_user_holdings(after)):
        raise ConflictError(
            f"{what} would leave no enabled user who can edit RBAC; "
            "grant that to someone else first (break-glass: `mcpd admin reset` on the mcpd host)",
            details={"reason": "last_rbac_editor"},
        )
