"""Servers (registry only): stdio and http specs whose env/header values may be secretRefs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mcpctl.core.errors import ConflictError, InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.mcpd.kinds.base import KindContext, KindHandler
from mcpctl.mcpd.schemas import ServerSpec
from mcpctl.storage import tables


def secret_refs(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(secret, key) pairs a canonical server spec refers to."""
    refs = []
    for field in ("env", "headers"):
        for value in (spec.get(field) or {}).values():
            if isinstance(value, dict) and "secretRef" in value:
                refs.append((value["secretRef"]["name"], value["secretRef"]["key"]))
    return refs


class ServerHandler(KindHandler[tables.Server, ServerSpec]):
    info = kind_for_noun("servers")  # type: ignore[assignment]
    table = tables.Server
    spec_model = ServerSpec

    async def spec_of(self, ctx: KindContext, row: tables.Server, *, show_values: bool) -> dict[str, Any]:
        return {"transport": row.transport, **row.spec}

    async def status_of(self, ctx: KindContext, row: tables.Server) -> dict[str, Any]:
        return {"projects": await self.projects_using(ctx, row)}

    async def projects_using(self, ctx: KindContext, row: tables.Server) -> list[str]:
        result = await ctx.session.execute(
            sa.select(tables.Project.name)
            .join(tables.ProjectServer, tables.ProjectServer.project_id == tables.Project.id)
            .where(tables.ProjectServer.server_id == row.id)
            .order_by(tables.Project.name)
        )
        return list(result.scalars())

    def canonical(self, spec: ServerSpec) -> dict[str, Any]:
        return spec.canonical()

    async def write(self, ctx: KindContext, row: tables.Server, spec: ServerSpec) -> None:
        canonical = spec.canonical()
        await check_secret_refs(ctx, secret_refs(canonical))
        row.transport = canonical.pop("transport")
        row.spec = canonical

    async def before_delete(self, ctx: KindContext, row: tables.Server, *, force: bool) -> None:
        projects = await self.projects_using(ctx, row)
        if projects and not force:
            raise ConflictError(
                f'server "{row.name}" is used by project(s) {", ".join(projects)}; '
                "use --force to detach it and delete",
                details={"projects": projects},
            )
        await ctx.session.execute(
            sa.delete(tables.ProjectServer).where(tables.ProjectServer.server_id == row.id)
        )


async def check_secret_refs(ctx: KindContext, refs: list[tuple[str, str]]) -> None:
    """Every referenced secret and key must exist (InvalidError naming the first that does not)."""
    from mcpctl.mcpd.kinds.secrets import secret_keys  # a server needs secrets, not vice versa

    for name, key in refs:
        keys = await secret_keys(ctx, name)
        if keys is None:
            raise InvalidError(f'unknown secret "{name}" in secretRef', details={"secret": name})
        if key not in keys:
            raise InvalidError(f'secret "{name}" has no key "{key}"', details={"secret": name, "key": key})
