"""Project-scoped reads: GET /projects/{project}/servers and /projects/{project}/endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mcpctl.core.errors import ForbiddenError, NotFoundError
from mcpctl.core.policy import can_access, can_run_server, describe, ensure_visible
from mcpctl.core.selectors import parse_selector
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.gateway import project_view
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


@router.get("/{name}/endpoint", summary="What the project's MCP endpoint serves this caller (for mcplocal)")
async def project_endpoint(name: NamePath, state: State, principal: CurrentPrincipal) -> Any:
    """The project's servers in order (only those the caller may use through the endpoint), how
    names are exposed, its proxy model with its stages, and its prompts (all of them: whoever may
    use the endpoint gets them from the gate). An McpToken of the project may always ask (that is
    what mcplocal does with the caller's bearer); a user needs `view` on the project, and sees the
    servers they may `run`."""
    if principal.kind == "token":
        if principal.project != name:
            raise ForbiddenError(
                f"{describe(principal)} may only be used under /api/v1/projects/{principal.project}/",
                details={"project": principal.project},
            )
    else:
        ensure_visible(principal, "projects", name, kind="Project")
    async with state.db.read() as session:
        view = await project_view(session, name)
    if view is None:
        raise NotFoundError(f'project "{name}" not found', details={"kind": "Project", "name": name})
    servers = [s for s in view.servers if can_run_server(principal, s)]
    return {
        "project": view.name,
        "toolPrefixMode": view.prefix_mode,
        "toolNameSeparator": view.separator,
        "servers": servers,
        "proxyModel": view.proxy_model,
        "stages": [stage.as_spec() for stage in view.stages],
        "prompts": [
            {
                "name": p.name,
                "text": p.text,
                "priority": p.priority,
                "tags": list(p.tags),
                "description": p.description,
            }
            for p in view.prompts
        ],
    }
