"""Secrets: a map of values encrypted at rest; masked on read unless asked for and allowed."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from mcpctl.core.errors import ConflictError, InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.policy import can_access
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, in_use_error
from mcpctl.mcpd.schemas import SecretSpec
from mcpctl.storage import tables

MASK = "********"


def decrypt(ctx: KindContext, row: tables.Secret) -> dict[str, str]:
    data: dict[str, str] = json.loads(ctx.cipher.decrypt(row.data_encrypted))
    return data


async def secret_keys(ctx: KindContext, name: str) -> set[str] | None:
    row = (await ctx.session.execute(sa.select(tables.Secret).where(tables.Secret.name == name))).scalar()
    return None if row is None else set(decrypt(ctx, row))


class SecretHandler(KindHandler[tables.Secret, SecretSpec]):
    info = kind_for_noun("secrets")  # type: ignore[assignment]
    table = tables.Secret
    spec_model = SecretSpec

    async def spec_of(self, ctx: KindContext, row: tables.Secret, *, show_values: bool) -> dict[str, Any]:
        data = decrypt(ctx, row)
        return {"data": {k: (v if show_values else MASK) for k, v in sorted(data.items())}}

    async def status_of(self, ctx: KindContext, row: tables.Secret) -> dict[str, Any]:
        return {"keys": sorted(decrypt(ctx, row))}

    def _resolve(self, ctx: KindContext, row: tables.Secret | None, spec: SecretSpec) -> dict[str, str]:
        """The data to store: a masked value keeps the stored value of the same key."""
        current = decrypt(ctx, row) if row is not None and row.data_encrypted else {}
        data = {}
        for key, value in spec.data.items():
            if value == MASK:
                if key not in current:
                    raise InvalidError(
                        f'secret value for "{key}" is the mask {MASK!r} but no value is stored for that key',
                        details={"key": key},
                    )
                value = current[key]
            data[key] = value
        return dict(sorted(data.items()))

    async def differs(self, ctx: KindContext, row: tables.Secret, spec: SecretSpec) -> bool:
        return decrypt(ctx, row) != self._resolve(ctx, row, spec)

    async def write(self, ctx: KindContext, row: tables.Secret, spec: SecretSpec) -> None:
        existing = row if row.data_encrypted is not None else None
        data = self._resolve(ctx, existing, spec)
        if existing is not None:
            await self._check_still_referenced(ctx, row, set(data))
        row.data_encrypted = ctx.cipher.encrypt(json.dumps(data).encode())

    async def _check_still_referenced(self, ctx: KindContext, row: tables.Secret, keys: set[str]) -> None:
        from mcpctl.mcpd.kinds.servers import secret_refs

        for server in (await ctx.session.execute(sa.select(tables.Server))).scalars():
            for name, key in secret_refs(server.spec):
                if name == row.name and key not in keys:
                    shown = server.name if can_access(ctx.principal, "view", "servers", server.name) else None
                    raise ConflictError(
                        f'key "{key}" of secret "{row.name}" is used by server "{shown or "(hidden)"}"',
                        details={"server": shown},
                    )

    async def before_delete(self, ctx: KindContext, row: tables.Secret, *, force: bool) -> None:
        from mcpctl.mcpd.kinds.servers import secret_refs

        users = sorted(
            server.name
            for server in (await ctx.session.execute(sa.select(tables.Server))).scalars()
            if any(name == row.name for name, _ in secret_refs(server.spec))
        )
        if users and not force:
            raise in_use_error(
                ctx, f'secret "{row.name}"', "servers", users, "use --force to delete it anyway"
            )
