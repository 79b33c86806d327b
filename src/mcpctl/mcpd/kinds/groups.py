"""Groups: an ordered list of member users (by e-mail)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mcpctl.core.errors import InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, replace_children
from mcpctl.mcpd.schemas import GroupSpec
from mcpctl.storage import tables


class GroupHandler(KindHandler[tables.Group, GroupSpec]):
    info = kind_for_noun("groups")  # type: ignore[assignment]
    table = tables.Group
    spec_model = GroupSpec

    async def spec_of(self, ctx: KindContext, row: tables.Group, *, show_values: bool) -> dict[str, Any]:
        return {"members": [m.user.email for m in row.memberships]}

    def canonical(self, spec: GroupSpec) -> dict[str, Any]:
        return {"members": _unique(m.lower() for m in spec.members)}

    async def write(self, ctx: KindContext, row: tables.Group, spec: GroupSpec) -> None:
        emails = _unique(m.lower() for m in spec.members)
        found: dict[str, tables.User] = {}
        if emails:
            result = await ctx.session.execute(sa.select(tables.User).where(tables.User.email.in_(emails)))
            found = {user.email: user for user in result.scalars()}
        missing = [e for e in emails if e not in found]
        if missing:
            raise InvalidError(f'unknown user "{missing[0]}" in members', details={"missing": missing})
        await replace_children(ctx, row, "memberships")
        row.memberships = [
            tables.GroupMember(user=found[email], position=i) for i, email in enumerate(emails)
        ]


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))
