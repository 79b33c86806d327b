"""Instances (read-only, from the supervisor): list, get, stderr logs.

`GET /instances[?server=S][&labelSelector=…]`, `GET /projects/{p}/instances`, `GET /instances/{name}`,
`GET /instances/{name}/logs?tail=N` (operation `logs`). Visibility is `view` on `instances`
(optionally narrowed by name); an instance carries its server's labels.

Several mcpd replicas on one PostgreSQL database each run only the servers whose leases they hold:
a listing adds what the other replicas answer to the same request (with the caller's own bearer,
so each applies the caller's permissions), and one instance is asked of its server's holder.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Path, Query, Request

from mcpctl.core.errors import NotFoundError
from mcpctl.core.policy import can_access, ensure_operation, ensure_visible
from mcpctl.core.selectors import parse_selector
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.kinds.projects import ProjectHandler
from mcpctl.mcpd.routers.resources import NamePath
from mcpctl.mcpd.schemas import ListOut, ObjectOut
from mcpctl.mcpd.state import AppState
from mcpctl.mcpd.supervisor.instance import Replica

logger = logging.getLogger(__name__)
router = APIRouter(tags=["instances"])
# set on a request one replica makes of another: answer with this replica's own instances only
LOCAL_ONLY = "X-Mcpd-Local-Only"
REMOTE_SECONDS = 5.0
_projects = ProjectHandler()
Selector = Annotated[str | None, Query(alias="labelSelector", max_length=1000)]
# `<server>-<replica>`: a server name (a DNS label) and a number, so a little longer than a label
InstancePath = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,70}[a-z0-9])?$", max_length=72)]
ServerFilter = Annotated[str | None, Query(max_length=253, description="Only this server's instances")]


def _all(state: AppState) -> list[Replica]:
    return state.supervisor.instances() if state.supervisor is not None else []


async def _ask(request: Request, url: str) -> httpx.Response | None:
    """The same request of another replica, with the caller's bearer; None when it cannot answer."""
    headers = {LOCAL_ONLY: "1"}
    if "authorization" in request.headers:
        headers["Authorization"] = request.headers["authorization"]
    target = f"{url}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    try:
        async with httpx.AsyncClient(timeout=REMOTE_SECONDS) as client:
            return await client.get(target, headers=headers)
    except httpx.HTTPError as exc:
        logger.warning("mcpd replica at %s did not answer %s: %s", url, request.url.path, exc)
        return None


async def _elsewhere(request: Request, state: AppState) -> list[dict[str, Any]]:
    """The instances the other replicas list for this same request."""
    leases = state.supervisor.leases if state.supervisor is not None else None
    if leases is None or request.headers.get(LOCAL_ONLY):
        return []
    answers = await asyncio.gather(*(_ask(request, other.url) for other in await leases.others()))
    items: list[dict[str, Any]] = []
    for answer in answers:
        if answer is not None and answer.status_code == 200:
            items += answer.json().get("items") or []
    return items


def _key(item: dict[str, Any]) -> tuple[str, int]:
    spec = item.get("spec") or {}
    return str(spec.get("server", "")), int(spec.get("replica", 0))


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
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    server: ServerFilter = None,
    label_selector: Selector = None,
) -> Any:
    listing = _listing(_all(state), principal, server, label_selector)
    listing["items"] = sorted(listing["items"] + await _elsewhere(request, state), key=_key)
    return listing


@router.get(
    "/projects/{name}/instances", response_model=ListOut, summary="Instances of the project's servers"
)
async def project_instances(
    request: Request,
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
    listing = _listing(replicas, principal, server, label_selector)
    found = listing["items"] + [i for i in await _elsewhere(request, state) if _key(i)[0] in servers]
    listing["items"] = sorted(found, key=lambda i: (servers.index(_key(i)[0]), _key(i)[1]))
    return listing


def _require(state: AppState, principal: Any, name: str) -> Replica | None:
    """The instance when this replica runs it; None when another replica may (else 404)."""
    ensure_visible(principal, "instances", name, kind="Instance")
    replica = state.supervisor.instance(name) if state.supervisor is not None else None
    if replica is None and (state.supervisor is None or state.supervisor.leases is None):
        raise NotFoundError(f'instance "{name}" not found', details={"kind": "Instance", "name": name})
    return replica


async def _from_holder(request: Request, state: AppState, name: str) -> Any:
    """What the replica holding the instance's server answers for it (404 when none does)."""
    leases = state.supervisor.leases if state.supervisor is not None else None
    answer = None
    if leases is not None and not request.headers.get(LOCAL_ONLY):
        holder = await leases.holder(name.rsplit("-", 1)[0])
        if holder is not None and holder.replica != leases.replica_id:
            answer = await _ask(request, holder.url)
    if answer is None or answer.status_code != 200:
        raise NotFoundError(f'instance "{name}" not found', details={"kind": "Instance", "name": name})
    return answer.json()


@router.get("/instances/{name}", response_model=ObjectOut, summary="Get one instance (with its events)")
async def get_instance(
    request: Request, name: InstancePath, state: State, principal: CurrentPrincipal
) -> Any:
    replica = _require(state, principal, name)
    return replica.to_object() if replica is not None else await _from_holder(request, state, name)


@router.get("/instances/{name}/logs", summary="The instance's stderr (operation logs)")
async def instance_logs(
    request: Request,
    name: InstancePath,
    state: State,
    principal: CurrentPrincipal,
    tail: Annotated[int | None, Query(ge=0, le=100_000, description="Only the last N lines")] = None,
) -> dict[str, Any]:
    replica = _require(state, principal, name)
    ensure_operation(principal, "logs")
    if replica is None:
        answer: dict[str, Any] = await _from_holder(request, state, name)
        return answer
    lines = replica.stderr.tail(tail)
    return {
        "kind": "InstanceLogs",
        "instance": replica.name,
        "lines": lines,
        "dropped": replica.stderr.dropped,
    }
