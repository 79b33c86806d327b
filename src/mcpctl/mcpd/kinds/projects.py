"""Projects: an ordered list of servers plus the settings the project endpoint will use."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import sqlalchemy as sa

from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.namespacing import Naming
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, replace_children, resolve
from mcpctl.mcpd.kinds.proxymodels import check_proxy_model
from mcpctl.mcpd.schemas import ProjectSpec
from mcpctl.storage import tables


class ProjectHandler(KindHandler[tables.Project, ProjectSpec]):
    info = kind_for_noun("projects")  # type: ignore[assignment]
    table = tables.Project
    spec_model = ProjectSpec

    async def spec_of(self, ctx: KindContext, row: tables.Project, *, show_values: bool) -> dict[str, Any]:
        return {
            "servers": [link.server.name for link in row.server_links],
            "proxyModel": row.proxy_model,
            "toolPrefixMode": row.tool_prefix_mode,
            "toolNameSeparator": row.tool_name_separator,
        }

    def canonical(self, spec: ProjectSpec) -> dict[str, Any]:
        data = super().canonical(spec)
        data["servers"] = list(dict.fromkeys(spec.servers))
        return data

    async def before_delete(self, ctx: KindContext, row: tables.Project, *, force: bool) -> None:
        # The project's tokens and prompts go with it (database cascade): the tokens' RbacDefinitions
        # and files go too, and each token is audited as deleted.
        from mcpctl.mcpd import audit
        from mcpctl.mcpd.mcptokens import drop_definitions, remove_token_file, subject_of

        owned = (
            (
                await ctx.session.execute(
                    sa.select(tables.McpToken).where(tables.McpToken.project_id == row.id)
                )
            )
            .scalars()
            .all()
        )
        await drop_definitions(ctx.session, [subject_of(token) for token in owned])
        for token in owned:
            fields = {**audit.principal_fields(ctx.principal), "project": row.name}
            audit.record(
                ctx.session,
                "token_deleted",
                outcome="ok",
                token_name=token.name,
                token_sha=token.token_sha,
                target=f"mcptokens/{token.name}",
                **fields,
            )
            ctx.after_commit.append(functools.partial(remove_token_file, ctx.data_dir, token, row.name))

    @staticmethod
    async def _refuse_collisions(ctx: KindContext, servers: list[str], separator: str) -> None:
        """`toolPrefixMode: never` exposes upstream names as they are: two servers offering the same
        tool or prompt name is refused here (400), with both servers named. Servers that are not
        running cannot say; the endpoint hides later duplicates at run time and logs them."""
        assert ctx.offered_names is not None
        offered = dict(zip(servers, await asyncio.gather(*map(ctx.offered_names, servers)), strict=True))
        naming = Naming("never", separator, tuple(servers))
        for what in ("tools", "prompts"):
            naming.index(
                {s: names[what] for s, names in offered.items() if names is not None}, what=what[:-1]
            )

    async def write(self, ctx: KindContext, row: tables.Project, spec: ProjectSpec) -> None:
        names = list(dict.fromkeys(spec.servers))
        kept = {link.server.name for link in row.server_links} if sa.inspect(row).persistent else set()
        found = await resolve(
            ctx, tables.Server.name, names, what="server", field="servers", plural="servers", kept=kept
        )
        persistent = sa.inspect(row).persistent
        await check_proxy_model(ctx, spec.proxyModel, kept=row.proxy_model if persistent else None)
        if spec.toolPrefixMode == "never" and ctx.offered_names is not None:
            await self._refuse_collisions(ctx, names, spec.toolNameSeparator)
        row.proxy_model = spec.proxyModel
        row.tool_prefix_mode = spec.toolPrefixMode
        row.tool_name_separator = spec.toolNameSeparator
        await replace_children(ctx, row, "server_links")
        row.server_links = [tables.ProjectServer(server=found[n], position=i) for i, n in enumerate(names)]
