"""Project-scoped lists: GET /projects/{project}/servers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mcpctl.core.policy import can_access, ensure_visible
from mcpctl.core.selectors import parse_selector
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.kinds.projects import ProjectHandler
from mcpctl.mcpd.kinds.servers import ServerHandler
from mcpctl.mcpd.routers.resources import NamePath
from mcpctl.mcpd.schemas import ListOut

router = APIRouter(prefix="/projects", tags=["projects"])
_projects, _servers = ProjectHandler(), ServerHandler()


@router.get("/{name}/servers", response_model=ListOut, summary="The project's servers, in project order")
async def project_servers(
    name: NamePath,
    state: State,
    principal: CurrentPrincipal,
    label_selector: Annotated[str | None, Query(alias="labelSelector", max_length=1000)] = None,
) -> Any:
    ensure_visible(principal, "projects", name, kind="Project")
    matches = parse_selector(label_selector or "")
    async with state.db.read() as session:
        project = await _projects.require(session, name)
        ctx = state.context(session, principal)
        items = [
            await _servers.to_object(ctx, link.server)
            for link in project.server_links
            if can_access(principal, "view", "servers", link.server.name)
            and matches(link.server.labels or {})
        ]
    return {"kind": "List", "items": items}
