"""Instances (read-only, from the supervisor): list, get, stderr logs.

`GET /instances[?server=S][&labelSelector=…]`, `GET /projects/{p}/instances`, `GET /instances/{name}`,
`GET /instances/{name}/logs?tail=N` (operation `logs`). Visibility is `view` on `instances`
(optionally narrowed by name); an instance carries its server's labels.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from mcpctl.core.errors import NotFoundError
from mcpctl.core.policy import can_access, ensure_operation, ensure_visible
from mcpctl.core.selectors import parse_selector
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.kinds.projects import ProjectHandler
from mcpctl.mcpd.routers.resources import NamePath
from mcpctl.mcpd.schemas import ListOut, ObjectOut
from mcpctl.mcpd.state import AppState
from mcpctl.mcpd.supervisor.instance import Replica

router = APIRouter(tags=["instances"])
_projects = ProjectHandler()
Selector = Annotated[str | None, Query(alias="labelSelector", max_length=1000)]
# `<server>-<replica>`: a server name (a DNS label) and a number, so a little longer than a label
InstancePath = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,70}[a-z0-9])?$", max_length=72)]
ServerFilter = Annotated[str | None, Query(max_length=253, description="Only this server's instances")]


def _all(state: AppState) -> list[Replica]:
    return state.supervisor.instances() if state.supervisor is not None else []


def _listing(
    replicas: list[Replica], principal: Any, server: str | None, selector: str | None
) -> dict[str, Any]:
    matches = parse_selector(selector or "")
    items = [
        r.to_object()
        for r in replicas
        if (server is None or r.config.name == server)
        and can_access(principal, "view", "instances", r.name)
        and matches(r.config.labels)
    ]
    return {"kind": "List", "items": items}


@router.get("/instances", response_model=ListOut, summary="List instances")
async def list_instances(
    state: State, principal: CurrentPrincipal, server: ServerFilter = None, label_selector: Selector = None
) -> Any:
    return _listing(_all(state), principal, server, label_selector)


@router.get(
    "/projects/{name}/instances", response_model=ListOut, summary="Instances of the project's servers"
)
async def project_instances(
    name: NamePath,
    state: State,
    principal: CurrentPrincipal,
    server: ServerFilter = None,
    label_selector: Selector = None,
) -> Any:
    ensure_visible(principal, "projects", name, kind="Project")
    async with state.db.read() as session:
        project = await _projects.require(session, name)
        servers = [link.server.name for link in project.server_links]
    replicas = [r for r in _all(state) if r.config.name in servers]
    replicas.sort(key=lambda r: (servers.index(r.config.name), r.index))
    return _listing(replicas, principal, server, label_selector)


def _require(state: AppState, principal: Any, name: str) -> Replica:
    ensure_visible(principal, "instances", name, kind="Instance")
    replica = state.supervisor.instance(name) if state.supervisor is not None else None
    if replica is None:
        raise NotFoundError(f'instance "{name}" not found', details={"kind": "Instance", "name": name})
    return replica


@router.get("/instances/{name}", response_model=ObjectOut, summary="Get one instance (with its events)")
async def get_instance(name: InstancePath, state: State, principal: CurrentPrincipal) -> Any:
    return _require(state, principal, name).to_object()


@router.get("/instances/{name}/logs", summary="The instance's stderr (operation logs)")
async def instance_logs(
    name: InstancePath,
    state: State,
    principal: CurrentPrincipal,
    tail: Annotated[int | None, Query(ge=0, le=100_000, description="Only the last N lines")] = None,
) -> dict[str, Any]:
    replica = _require(state, principal, name)
    ensure_operation(principal, "logs")
    lines = replica.stderr.tail(tail)
    return {
        "kind": "InstanceLogs",
        "instance": replica.name,
        "lines": lines,
        "dropped": replica.stderr.dropped,
    }
