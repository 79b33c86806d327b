"""Servers (registry only): stdio and http specs whose env/header values may be secretRefs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mcpctl.core.errors import InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.policy import can_access
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, in_use_error
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
        projects = await self.projects_using(ctx, row)
        return {"projects": [p for p in projects if can_access(ctx.principal, "view", "projects", p)]}

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
        kept = set(secret_refs(row.spec)) if sa.inspect(row).persistent else set()
        await check_secret_refs(ctx, [ref for ref in secret_refs(canonical) if ref not in kept])
        row.transport = canonical.pop("transport")
        row.spec = canonical

    async def before_delete(self, ctx: KindContext, row: tables.Server, *, force: bool) -> None:
        projects = await self.projects_using(ctx, row)
        if projects and not force:
            raise in_use_error(
                ctx, f'server "{row.name}"', "projects", projects, "use --force to detach it and delete"
            )
        await ctx.session.execute(
            sa.delete(tables.ProjectServer).where(tables.ProjectServer.server_id == row.id)
        )


async def check_secret_refs(ctx: KindContext, refs: list[tuple[str, str]]) -> None:
    """Every referenced secret and key must exist (InvalidError naming the first that does not)."""
    from mcpctl.mcpd.kinds.secrets import secret_keys  # a server needs secrets, not vice versa

    for name, key in refs:
        visible = can_access(ctx.principal, "view", "secrets", name)
        keys = await secret_keys(ctx, name) if visible else None
        if keys is None:  # missing and not visible read the same
            raise InvalidError(f'unknown secret "{name}" in secretRef', details={"secret": name})
        if key not in keys:
            raise InvalidError(f'secret "{name}" has no key "{key}"', details={"secret": name, "key": key})
