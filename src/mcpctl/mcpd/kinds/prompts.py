"""Prompts (DESIGN §2, §10): a project's own texts, named within the project and deleted with it;
the gate delivers them, the project endpoint lists them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.kinds import kind_for_noun
from mcpctl.mcpd.kinds.base import KindContext, KindHandler
from mcpctl.mcpd.schemas import PromptSpec
from mcpctl.storage import tables


class PromptHandler(KindHandler[tables.Prompt, PromptSpec]):
    info = kind_for_noun("prompts")  # type: ignore[assignment]
    table = tables.Prompt
    spec_model = PromptSpec

    async def get_in(self, session: AsyncSession, project: tables.Project, name: str) -> tables.Prompt | None:
        result = await session.execute(
            sa.select(tables.Prompt).where(tables.Prompt.project_id == project.id, tables.Prompt.name == name)
        )
        return result.scalars().first()

    async def list_in(self, session: AsyncSession, project: tables.Project | None) -> list[tables.Prompt]:
        stmt = sa.select(tables.Prompt).join(tables.Project).order_by(tables.Project.name, tables.Prompt.name)
        if project is not None:
            stmt = stmt.where(tables.Prompt.project_id == project.id)
        return list((await session.execute(stmt)).scalars().all())

    async def to_object(
        self, ctx: KindContext, row: tables.Prompt, *, show_values: bool = False
    ) -> dict[str, Any]:
        obj = await super().to_object(ctx, row, show_values=show_values)
        obj["metadata"] = {"name": row.name, "project": row.project.name, **obj["metadata"]}
        return obj

    async def spec_of(self, ctx: KindContext, row: tables.Prompt, *, show_values: bool) -> dict[str, Any]:
        return {"text": row.text, "priority": row.priority, "tags": list(row.tags)}

    async def status_of(self, ctx: KindContext, row: tables.Prompt) -> dict[str, Any]:
        return {"bytes": len(row.text.encode())}

    def canonical(self, spec: PromptSpec) -> dict[str, Any]:
        return {"text": spec.text, "priority": spec.priority, "tags": list(dict.fromkeys(spec.tags))}

    async def write(self, ctx: KindContext, row: tables.Prompt, spec: PromptSpec) -> None:
        if not sa.inspect(row).persistent:
            assert ctx.project is not None, "a new prompt needs its project"
            row.project = ctx.project
        row.text = spec.text
        row.priority = spec.priority
        row.tags = list(dict.fromkeys(spec.tags))
