"""Groups: an ordered list of member users (by e-mail)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mcpctl.core.kinds import kind_for_noun
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, replace_children, resolve
from mcpctl.mcpd.schemas import GroupSpec
from mcpctl.storage import tables


class GroupHandler(KindHandler[tables.Group, GroupSpec]):
    info = kind_for_noun("groups")  # type: ignore[assignment]
    table = tables.Group
    spec_model = GroupSpec
    changes_permissions = True

    async def spec_of(self, ctx: KindContext, row: tables.Group, *, show_values: bool) -> dict[str, Any]:
        return {"members": [m.user.email for m in row.memberships]}

    def canonical(self, spec: GroupSpec) -> dict[str, Any]:
        return {"members": _unique(m.lower() for m in spec.members)}

    async def before_delete(self, ctx: KindContext, row: tables.Group, *, force: bool) -> None:
        # A group re-created later under the same name must not inherit old grants.
        await ctx.session.execute(
            sa.delete(tables.RbacSubject).where(tables.RbacSubject.subject == f"Group:{row.name}")
        )

    async def write(self, ctx: KindContext, row: tables.Group, spec: GroupSpec) -> None:
        emails = _unique(m.lower() for m in spec.members)
        kept = {m.user.email for m in row.memberships} if sa.inspect(row).persistent else set()
        found = await resolve(
            ctx, tables.User.email, emails, what="user", field="members", plural="users", kept=kept
        )
        await replace_children(ctx, row, "memberships")
        row.memberships = [
            tables.GroupMember(user=found[email], position=i) for i, email in enumerate(emails)
        ]


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))
