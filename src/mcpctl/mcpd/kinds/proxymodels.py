"""ProxyModels (DESIGN §10): named pipelines of stages. The built-ins of core.proxymodels exist
without a row and cannot be created, changed or deleted; a stored model in use by a project cannot
be deleted."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import sqlalchemy as sa

from mcpctl.core import proxymodels
from mcpctl.core.errors import InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.policy import can_access
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, in_use_error
from mcpctl.mcpd.schemas import ProxyModelSpec
from mcpctl.storage import tables


def installed_stage_types() -> list[str]:
    """Custom stage types: the `mcpctl.stages` entry points installed where mcpd runs."""
    return [ep.name for ep in importlib.metadata.entry_points(group=proxymodels.ENTRY_POINT_GROUP)]


async def projects_using(session: Any, model: str) -> list[str]:
    result = await session.execute(
        sa.select(tables.Project.name)
        .where(tables.Project.proxy_model == model)
        .order_by(tables.Project.name)
    )
    return list(result.scalars())


async def check_proxy_model(ctx: KindContext, model: str, *, kept: str | None) -> None:
    """A project's `proxyModel` must name a built-in or a stored model the writer may view (the one
    the project already has stays allowed): else 400 naming it and listing what exists."""
    if proxymodels.is_built_in(model) or model == kept:
        return
    stored = (await ctx.session.execute(sa.select(tables.ProxyModel.name))).scalars().all()
    visible = sorted(n for n in stored if can_access(ctx.principal, "view", "proxymodels", n))
    if model not in visible:
        known = sorted([*proxymodels.BUILT_INS, *visible])
        raise InvalidError(
            f'unknown proxy model "{model}" in proxyModel (known: {", ".join(known)})',
            details={"proxyModel": model, "known": known},
        )


class ProxyModelHandler(KindHandler[tables.ProxyModel, ProxyModelSpec]):
    info = kind_for_noun("proxymodels")  # type: ignore[assignment]
    table = tables.ProxyModel
    spec_model = ProxyModelSpec

    def built_in_names(self) -> tuple[str, ...]:
        return tuple(proxymodels.BUILT_INS)

    async def built_in(self, ctx: KindContext, name: str) -> dict[str, Any] | None:
        if not proxymodels.is_built_in(name):
            return None
        spec = proxymodels.built_in_spec(name)
        spec["description"] = proxymodels.BUILT_IN_DESCRIPTIONS[name]
        return {
            "kind": "ProxyModel",
            "metadata": {"name": name},
            "spec": spec,
            "status": {"builtIn": True, "projects": await self._visible_users(ctx, name)},
        }

    async def _visible_users(self, ctx: KindContext, name: str) -> list[str]:
        users = await projects_using(ctx.session, name)
        return [p for p in users if can_access(ctx.principal, "view", "projects", p)]

    async def spec_of(self, ctx: KindContext, row: tables.ProxyModel, *, show_values: bool) -> dict[str, Any]:
        return {"stages": [{"type": s["type"], "config": dict(s.get("config") or {})} for s in row.stages]}

    async def status_of(self, ctx: KindContext, row: tables.ProxyModel) -> dict[str, Any]:
        return {"builtIn": False, "projects": await self._visible_users(ctx, row.name)}

    def canonical(self, spec: ProxyModelSpec) -> dict[str, Any]:
        return {"stages": [{"type": s.type, "config": dict(s.config)} for s in spec.stages]}

    async def write(self, ctx: KindContext, row: tables.ProxyModel, spec: ProxyModelSpec) -> None:
        stages = proxymodels.check_stages(self.canonical(spec)["stages"], installed_stage_types)
        row.stages = [stage.as_spec() for stage in stages]

    async def before_delete(self, ctx: KindContext, row: tables.ProxyModel, *, force: bool) -> None:
        users = await projects_using(ctx.session, row.name)
        if users:  # no --force: a project must never be left naming a model that does not exist
            raise in_use_error(
                ctx, f'proxy model "{row.name}"', "projects", users, "change their proxyModel first"
            )
