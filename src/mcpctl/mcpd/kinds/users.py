"""Users: e-mail identity, Argon2id password (write-only), `disabled`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from mcpctl.core.errors import AlreadyExistsError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.policy import can_access, ensure_may_act_as
from mcpctl.mcpd.auth import principal_for_user
from mcpctl.mcpd.kinds.base import KindContext, KindHandler
from mcpctl.mcpd.schemas import UserSpec
from mcpctl.storage import tables

T = TypeVar("T")


async def _rename_subject(ctx: KindContext, old: str, new: str) -> None:
    """Grants and token ownership follow the user, not the old address (no dangling grants)."""
    await ctx.session.execute(
        sa.update(tables.RbacSubject)
        .where(tables.RbacSubject.subject == f"User:{old}")
        .values(subject=f"User:{new}")
    )
    await ctx.session.execute(
        sa.update(tables.McpToken).where(tables.McpToken.owner == old).values(owner=new)
    )


async def _argon2(ctx: KindContext, fn: Callable[..., T], *args: Any) -> T:
    """Password work off the event loop and under the same cap as logins."""
    return fn(*args) if ctx.hashing is None else await ctx.hashing.run(fn, *args)


class UserHandler(KindHandler[tables.User, UserSpec]):
    info = kind_for_noun("users")  # type: ignore[assignment]
    table = tables.User
    spec_model = UserSpec
    changes_permissions = True

    async def spec_of(self, ctx: KindContext, row: tables.User, *, show_values: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {"email": row.email}
        if row.display_name is not None:
            spec["displayName"] = row.display_name
        spec["disabled"] = row.disabled
        return spec

    async def status_of(self, ctx: KindContext, row: tables.User) -> dict[str, Any]:
        result = await ctx.session.execute(
            sa.select(tables.Group.name)
            .join(tables.GroupMember, tables.GroupMember.group_id == tables.Group.id)
            .where(tables.GroupMember.user_id == row.id)
            .order_by(tables.Group.name)
        )
        groups = [g for g in result.scalars() if can_access(ctx.principal, "view", "groups", g)]
        return {"groups": groups, "hasPassword": row.password_hash is not None}

    def canonical(self, spec: UserSpec) -> dict[str, Any]:
        data = spec.model_dump(mode="json", exclude_none=True, exclude={"description", "password"})
        data["email"] = spec.email.lower()  # stored lower-cased: e-mail identity is case-insensitive
        return data

    async def differs(self, ctx: KindContext, row: tables.User, spec: UserSpec) -> bool:
        if spec.password is not None and not await _argon2(
            ctx, ctx.passwords.verify, row.password_hash, spec.password
        ):
            return True
        return await super().differs(ctx, row, spec)

    async def before_delete(self, ctx: KindContext, row: tables.User, *, force: bool) -> None:
        """A deleted user's grants go, and so do the tokens it minted (revoked, not inherited)."""
        from mcpctl.mcpd.mcptokens import revoke

        await ctx.session.execute(
            sa.delete(tables.RbacSubject).where(tables.RbacSubject.subject == f"User:{row.email}")
        )
        owned = await ctx.session.execute(
            sa.select(tables.McpToken).where(
                tables.McpToken.owner == row.email, tables.McpToken.revoked_at.is_(None)
            )
        )
        for token in owned.scalars().all():
            await revoke(ctx.session, token)

    async def write(self, ctx: KindContext, row: tables.User, spec: UserSpec) -> None:
        email = spec.email.lower()
        new_password = spec.password is not None and not await _argon2(
            ctx, ctx.passwords.verify, row.password_hash, spec.password
        )
        if sa.inspect(row).persistent and (
            new_password or email != row.email or spec.disabled != row.disabled
        ):
            # Another user's credentials, identity or `disabled` is their account: taking it over
            # must not give more than the writer holds (DESIGN §12).
            target = await principal_for_user(ctx.session, row)
            ensure_may_act_as(ctx.principal, target, what=f'changing user "{row.name}"')
            if new_password or spec.disabled:  # a password change or a disable ends their logins
                await ctx.session.execute(
                    sa.delete(tables.LoginSession).where(tables.LoginSession.user_id == row.id)
                )
        if email != row.email:
            clash = await ctx.session.execute(
                sa.select(tables.User.name).where(tables.User.email == email, tables.User.id != row.id)
            )
            if (other := clash.scalar()) is not None:
                raise AlreadyExistsError(
                    f'email "{email}" already belongs to user "{other}"', details={"field": "email"}
                )
        if row.email is not None and row.email != email:
            await _rename_subject(ctx, row.email, email)
        row.email = email
        row.display_name = spec.displayName
        row.disabled = spec.disabled
        if new_password:
            assert spec.password is not None
            row.password_hash = await _argon2(ctx, ctx.passwords.hash, spec.password)
