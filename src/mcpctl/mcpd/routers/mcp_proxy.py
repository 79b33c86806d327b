"""mcpd's per-server MCP proxy: Streamable HTTP (2025-11-25) in front of a server's instances.

`POST /api/v1/servers/{name}/mcp` (and `/api/v1/projects/{p}/servers/{name}/mcp`, the form McpTokens
use) takes one JSON-RPC message. `initialize` opens a proxy session (`Mcp-Session-Id`) and is
answered from the instance's own handshake, so every downstream session shares the running
instances; other requests go to the least busy RUNNING replica with a fresh upstream id, and come
back as JSON, or as an SSE stream when progress notifications arrive before the answer. Requests
without a session are served too (stateless use). `GET` with a session streams the notifications
that belong to no request (list_changed, logging, resource updates); `DELETE` ends the session.

Authorization: `run` on the server (users and tokens); a token only for servers of its project.
The server's `tools.allow`/`tools.deny` filter is enforced here: denied tools are not listed and
cannot be called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import httpx
import pydantic_core
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.background import BackgroundTask

from mcpctl.core.errors import ForbiddenError, NotFoundError
from mcpctl.core.policy import Principal, can_access, can_run_server, describe
from mcpctl.mcpd import audit
from mcpctl.mcpd.call_audit import AUDITED, call_record, downstream_session, outcome_of
from mcpctl.mcpd.deps import authenticated, get_state
from mcpctl.mcpd.routers.resources import NamePath
from mcpctl.mcpd.schemas import ErrorOut
from mcpctl.mcpd.state import AppState
from mcpctl.mcpd.supervisor.connection import UPSTREAM_UNAVAILABLE, UpstreamError
from mcpctl.mcpd.supervisor.runtime import ServerRuntime
from mcpctl.mcpd.supervisor.sessions import ProxySession, ProxySessions
from mcpctl.mcpd.supervisor.tool_filter import filter_tools, tool_allowed
from mcpctl.storage import tables

router = APIRouter(tags=["mcp proxy"])

SESSION_HEADER = "mcp-session-id"
SESSION_NOT_FOUND = -32001
HEARTBEAT_SECONDS = 15.0
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{
        code: {"model": ErrorOut, "description": text}
        for code, text in (
            (400, "Invalid input (a bad name: the error shape; a bad message: a JSON-RPC error)"),
            (401, "Unauthenticated"),
            (403, "Forbidden"),
            (404, "Not found (the server, or the proxy session: a JSON-RPC error)"),
        )
    },
    202: {"description": "A notification or a response was accepted"},
    502: {"description": "No instance of the server can answer (a JSON-RPC error)"},
    503: {"description": "Another mcpd replica runs the server (a JSON-RPC error; data.holder is its URL)"},
}


def _owner(principal: Principal) -> str:
    return f"token:{principal.token_sha}" if principal.kind == "token" else f"user:{principal.user_id}"


def _rpc_error(message_id: Any, code: int, text: str, data: Any = None, status: int = 200) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": text}
    if data is not None:
        error["data"] = data
    return JSONResponse({"jsonrpc": "2.0", "id": message_id, "error": error}, status_code=status)


# ---- authorization ----------------------------------------------------------------------------------


async def _authorize(state: AppState, principal: Principal, server: str, project: str | None) -> None:
    """404 for what the caller may not see, 403 for what it sees but may not run.

    McpTokens (DESIGN §4): only under their own project's path (elsewhere 403); only servers within
    the token's reach (the others are hidden, 404)."""
    hidden = NotFoundError(f'server "{server}" not found', details={"kind": "Server", "name": server})
    if principal.kind == "token" and project != principal.project:
        raise ForbiddenError(
            f"{describe(principal)} may only be used under /api/v1/projects/{principal.project}/",
            details={"project": principal.project},
        )
    async with state.db.read() as session:
        exists = (
            await session.execute(sa.select(tables.Server.id).where(tables.Server.name == server))
        ).scalar() is not None
        in_project = True
        if project is not None:
            in_project = (
                await session.execute(
                    sa.select(tables.ProjectServer.server_id)
                    .join(tables.Project, tables.Project.id == tables.ProjectServer.project_id)
                    .join(tables.Server, tables.Server.id == tables.ProjectServer.server_id)
                    .where(tables.Project.name == project, tables.Server.name == server)
                )
            ).first() is not None
    if principal.kind == "token":
        if not exists or not in_project:
            raise hidden
        if not can_run_server(principal, server):
            raise hidden
        return
    if project is not None and not can_access(principal, "view", "projects", project):
        raise NotFoundError(f'project "{project}" not found', details={"kind": "Project", "name": project})
    if not exists or not in_project:
        raise hidden
    if not can_run_server(principal, server):
        if can_access(principal, "view", "servers", server):
            raise ForbiddenError(
                f'{describe(principal)} cannot run server "{server}"',
                details={"role": "run", "resource": "servers", "name": server},
            )
        raise hidden


# ---- the endpoint -------------------------------------------------------------------------------------


@router.post("/api/v1/servers/{name}/mcp", responses=_RESPONSES, summary="MCP (Streamable HTTP) to a server")
async def post_server_mcp(name: NamePath, request: Request) -> Response:
    return await _post(request, name, None)


@router.post(
    "/api/v1/projects/{project}/servers/{name}/mcp",
    responses=_RESPONSES,
    summary="MCP (Streamable HTTP) to a server of a project",
)
async def post_project_server_mcp(project: NamePath, name: NamePath, request: Request) -> Response:
    return await _post(request, name, project)


@router.get(
    "/api/v1/servers/{name}/mcp", responses=_RESPONSES, summary="Notification stream of a proxy session"
)
async def get_server_mcp(name: NamePath, request: Request) -> Response:
    return await _get(request, name, None)


@router.get(
    "/api/v1/projects/{project}/servers/{name}/mcp",
    responses=_RESPONSES,
    summary="Notification stream of a proxy session",
)
async def get_project_server_mcp(project: NamePath, name: NamePath, request: Request) -> Response:
    return await _get(request, name, project)


@router.delete("/api/v1/servers/{name}/mcp", responses=_RESPONSES, summary="End a proxy session")
async def delete_server_mcp(name: NamePath, request: Request) -> Response:
    return await _delete(request, name, None)


@router.delete(
    "/api/v1/projects/{project}/servers/{name}/mcp", responses=_RESPONSES, summary="End a proxy session"
)
async def delete_project_server_mcp(project: NamePath, name: NamePath, request: Request) -> Response:
    return await _delete(request, name, project)


def _sessions(state: AppState) -> ProxySessions:
    assert state.proxy_sessions is not None
    return state.proxy_sessions


def _runtime(state: AppState, name: str) -> ServerRuntime | None:
    return state.supervisor.runtime(name) if state.supervisor is not None else None


# Set on a request one replica relays to the lease holder: the holder serves it or refuses it, never
# relays it again (a lease that moved meanwhile gives a 503, not a loop).
RELAYED_HEADER = "x-mcpd-relayed"
_RELAYED_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "accept",
    SESSION_HEADER,
    "mcp-protocol-version",
    "last-event-id",
    "x-mcpctl-session",
)
_RELAYED_RESPONSE_HEADERS = (
    "content-type",
    SESSION_HEADER,
    "cache-control",
    "www-authenticate",
    "retry-after",
)


async def _holder_elsewhere(state: AppState, name: str, request: Request) -> str | None:
    """The URL of the replica holding `name`'s lease when that is another one and this request may
    be relayed to it (not relayed already)."""
    leases = state.supervisor.leases if state.supervisor is not None else None
    if leases is None or leases.holds(name) or request.headers.get(RELAYED_HEADER):
        return None
    try:
        found = await leases.holder(name)
    except Exception:  # the database is down: answered as not running
        return None
    return found.url if found is not None and found.replica != leases.replica_id else None


async def _relay(request: Request, holder_url: str) -> Response:
    """The request as the lease holder answers it, streamed (the per-server proxy of every replica
    serves every server: sessions live on the holder, whose id the client keeps). The caller's own
    bearer goes with it; the holder authenticates and authorizes it again."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in _RELAYED_REQUEST_HEADERS}
    headers[RELAYED_HEADER] = "1"
    url = holder_url.rstrip("/") + request.url.path
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    try:
        answer = await client.send(
            client.build_request(request.method, url, headers=headers, content=await request.body()),
            stream=True,
        )
    except httpx.HTTPError as exc:
        await client.aclose()
        text = f"the mcpd replica running this server ({holder_url}) cannot be reached: {type(exc).__name__}"
        return _rpc_error(None, UPSTREAM_UNAVAILABLE, text, {"holder": holder_url}, status=503)

    async def close() -> None:
        await answer.aclose()
        await client.aclose()

    kept = {k: v for k, v in answer.headers.items() if k.lower() in _RELAYED_RESPONSE_HEADERS}
    return StreamingResponse(
        answer.aiter_raw(), status_code=answer.status_code, headers=kept, background=BackgroundTask(close)
    )


async def _not_running(state: AppState, name: str, message_id: Any) -> JSONResponse:
    """502 when no instance runs; 503 naming the replica that runs it when that is another mcpd
    (the per-server proxy is served by the replica holding the server's lease: use its URL)."""
    leases = state.supervisor.leases if state.supervisor is not None else None
    holder = None
    if leases is not None and not leases.holds(name):
        with contextlib.suppress(Exception):  # the database is down: plain "not running"
            found = await leases.holder(name)
            holder = found if found is not None and found.replica != leases.replica_id else None
    if holder is not None:
        text = f'server "{name}" runs on another mcpd replica ({holder.url}); ask that one'
        data = {"server": name, "holder": holder.url, "replica": holder.replica}
        return _rpc_error(message_id, UPSTREAM_UNAVAILABLE, text, data, status=503)
    return _rpc_error(message_id, UPSTREAM_UNAVAILABLE, f'server "{name}" is not running', status=502)


async def _post(request: Request, name: str, project: str | None) -> Response:
    state = get_state(request)
    principal = authenticated(request)
    await _authorize(state, principal, name, project)
    holder = await _holder_elsewhere(state, name, request)
    if holder is not None:
        return await _relay(request, holder)
    try:
        # the parser the project endpoint uses (through the SDK): its nesting limit answers a deeply
        # nested body at once, instead of a RecursionError here or a forwarded bomb upstream
        message = pydantic_core.from_json(await request.body())
    except ValueError as exc:
        return _rpc_error(None, PARSE_ERROR, f"Parse error: {exc}", status=400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _rpc_error(
            None, INVALID_REQUEST, "Invalid Request: expected one JSON-RPC 2.0 message", status=400
        )
    method = message.get("method")
    message_id = message.get("id")
    sessions = _sessions(state)
    session: ProxySession | None = None
    session_id = request.headers.get(SESSION_HEADER)
    if session_id and method != "initialize":
        session = sessions.get(session_id, name, _owner(principal))
        if session is None:
            return _rpc_error(message_id, SESSION_NOT_FOUND, "Session not found", status=404)
    if method is None or "id" not in message:  # a response or a notification
        if method == "notifications/cancelled" and session is not None:
            params = message.get("params") or {}
            task = session.inflight.get(json.dumps(params.get("requestId")))
            if task is not None:
                task.cancel()
        return Response(status_code=202)
    if not isinstance(method, str) or isinstance(message_id, bool) or not isinstance(message_id, str | int):
        return _rpc_error(message_id, INVALID_REQUEST, "Invalid Request", status=400)
    params = message.get("params")
    if params is not None and not isinstance(params, dict):
        return _rpc_error(
            message_id, INVALID_REQUEST, "Invalid Request: params must be an object", status=400
        )
    if method == "ping":
        return JSONResponse({"jsonrpc": "2.0", "id": message_id, "result": {}})
    runtime = _runtime(state, name)
    if runtime is None:
        return await _not_running(state, name, message_id)
    if method == "initialize":
        return await _initialize(runtime, sessions, principal, message_id, params or {})
    if method == "server/discover":
        return _rpc_error(message_id, METHOD_NOT_FOUND, "Method not found: this endpoint speaks 2025-11-25")
    if method == "tools/call" and not tool_allowed(runtime, str((params or {}).get("name", ""))):
        tool = (params or {}).get("name")
        return _rpc_error(
            message_id, INVALID_PARAMS, f"Unknown tool: {tool!r} is not allowed on server {name!r}"
        )
    streaming = "text/event-stream" in request.headers.get("accept", "")
    audit_hook = _audit_hook(request, state, principal, project, name, method, params, session)
    return await _forward(
        runtime,
        session,
        message_id,
        method,
        params,
        streaming=streaming,
        audit=audit_hook,
        disconnected=_disconnected(request),
        durable=state.gateway.durable if state.gateway is not None and audit_hook is not None else None,
    )


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read: what comes next is the end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _audit_hook(
    request: Request,
    state: AppState,
    principal: Principal,
    project: str | None,
    server: str,
    method: str,
    params: dict[str, Any] | None,
    session: ProxySession | None,
) -> Callable[[str, float], None] | None:
    """Record tools/call, resources/read and prompts/get as AuditEvents (queued, off the hot
    path). A caller may name its downstream session in X-Mcpctl-Session."""
    if method not in AUDITED or state.gateway is None:
        return None
    queue = state.gateway.audit
    session_id = downstream_session(principal, request.headers.get("x-mcpctl-session")) or (
        session.id if session is not None else None
    )
    request_id = getattr(request.state, "request_id", None)
    client = audit.client_addr(request)

    def record(outcome: str, seconds: float) -> None:
        event = call_record(
            method,
            params,
            principal,
            project=project,
            server=server,
            outcome=outcome,
            seconds=seconds,
            session_id=session_id,
            request_id=request_id,
            client_addr=client,
        )
        if event is not None:
            queue.put(event)

    return record


async def _initialize(
    runtime: ServerRuntime,
    sessions: ProxySessions,
    principal: Principal,
    message_id: Any,
    params: dict[str, Any],
) -> Response:
    try:
        replica = await runtime.pick(runtime.config.init_seconds)
    except UpstreamError as exc:
        return _rpc_error(message_id, exc.code, str(exc), {"server": runtime.name}, status=502)
    connection = replica.connection
    upstream = dict(connection.initialize_result or {}) if connection is not None else {}
    requested = params.get("protocolVersion")
    ours = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else HANDSHAKE_PROTOCOL_VERSIONS[-1]
    theirs = upstream.get("protocolVersion")
    # never claim more than both ends speak (versions are dates: the smaller is the older)
    upstream["protocolVersion"] = min(ours, theirs) if theirs in HANDSHAKE_PROTOCOL_VERSIONS else ours
    session = sessions.open(runtime.name, _owner(principal))
    return JSONResponse(
        {"jsonrpc": "2.0", "id": message_id, "result": upstream}, headers={"Mcp-Session-Id": session.id}
    )


async def _forward(
    runtime: ServerRuntime,
    session: ProxySession | None,
    message_id: Any,
    method: str,
    params: dict[str, Any] | None,
    *,
    streaming: bool,
    audit: Callable[[str, float], None] | None = None,
    disconnected: Coroutine[Any, Any, None] | None = None,
    durable: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Answer as JSON, or as SSE once a notification comes first. A client that goes away before
    either cancels the call (the upstream is told with notifications/cancelled)."""
    notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = time.perf_counter()

    async def on_progress(note: dict[str, Any]) -> None:
        notes.put_nowait(note)

    async def call() -> dict[str, Any]:
        replica = await runtime.pick(runtime.config.init_seconds)
        connection = replica.connection
        if connection is None:
            raise UpstreamError(runtime.unavailable_reason())
        answer = await connection.request(
            method, params, timeout=runtime.config.call_seconds, notify=on_progress if streaming else None
        )
        return filter_tools(runtime, answer) if method == "tools/list" else answer

    task = asyncio.create_task(call())
    if audit is not None:
        task.add_done_callback(lambda done: audit(_outcome(done), time.perf_counter() - started))
    key = json.dumps(message_id)
    if session is not None:
        session.inflight[key] = task
        task.add_done_callback(
            lambda _: session.inflight.pop(key, None) if session.inflight.get(key) is task else None
        )

    def finish() -> dict[str, Any]:
        return _response(runtime, message_id, task)

    async def on_disk() -> None:
        """The call's audit event is fsync'd before its answer goes (MCPLOCAL_AUDIT_SPOOL_SYNC)."""
        if durable is not None:
            await durable()

    first_note = asyncio.create_task(notes.get())
    gone: asyncio.Task[None] | None = asyncio.create_task(disconnected) if disconnected is not None else None
    try:
        await asyncio.wait({task, first_note, *([gone] if gone else [])}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        first_note.cancel()
        raise
    finally:
        if gone is not None and not gone.done():
            gone.cancel()
    if gone is not None and gone.done() and not task.done():
        task.cancel()  # nobody is waiting for the answer any more
        first_note.cancel()
        return Response(status_code=499)
    if task.done():
        early: list[dict[str, Any]] = []
        if first_note.done():
            early.append(first_note.result())
        else:
            first_note.cancel()
        while not notes.empty():
            early.append(notes.get_nowait())
        await on_disk()
        if early:  # notifications arrived with the answer: send both, in order
            return _sse_response(_replay([*early, finish()]))
        return JSONResponse(finish())

    async def stream() -> AsyncIterator[bytes]:
        getter: asyncio.Task[dict[str, Any]] | None = None
        try:
            yield _sse(first_note.result())
            while not task.done():
                getter = asyncio.create_task(notes.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield _sse(getter.result())
                else:
                    getter.cancel()
                getter = None
            while not notes.empty():
                yield _sse(notes.get_nowait())
            await on_disk()
            yield _sse(finish())
        finally:
            if getter is not None:
                getter.cancel()
            if not task.done():
                task.cancel()  # the caller went away: the upstream is told (notifications/cancelled)

    return _sse_response(stream())


def _outcome(task: asyncio.Task[dict[str, Any]]) -> str:
    if task.cancelled() or task.exception() is not None:
        return "error"
    return outcome_of(task.result())


async def _replay(messages: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for message in messages:
        yield _sse(message)


def _response(runtime: ServerRuntime, message_id: Any, task: asyncio.Task[dict[str, Any]]) -> dict[str, Any]:
    if task.cancelled():
        return {"jsonrpc": "2.0", "id": message_id, "error": {"code": -32800, "message": "Request cancelled"}}
    exc = task.exception()
    if isinstance(exc, UpstreamError):
        error = {"code": exc.code, "message": str(exc), "data": {"server": runtime.name}}
        return {"jsonrpc": "2.0", "id": message_id, "error": error}
    if exc is not None:
        error = {
            "code": INTERNAL_ERROR,
            "message": "internal error in mcpd's proxy",
            "data": {"server": runtime.name},
        }
        return {"jsonrpc": "2.0", "id": message_id, "error": error}
    answer = task.result()
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id}
    if "error" in answer:
        out["error"] = answer["error"]
    else:
        out["result"] = answer.get("result", {})
    return out


def _sse(message: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"


def _sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _first(*waits: Any) -> None:
    """Return when the first of these waits does; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when="FIRST_COMPLETED")
    finally:
        for task in tasks:
            task.cancel()


async def _get(request: Request, name: str, project: str | None) -> Response:
    state = get_state(request)
    principal = authenticated(request)
    await _authorize(state, principal, name, project)
    holder = await _holder_elsewhere(state, name, request)
    if holder is not None:
        return await _relay(request, holder)
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id:
        return _rpc_error(None, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required", status=400)
    sessions = _sessions(state)
    proxy_session = sessions.get(session_id, name, _owner(principal))
    if proxy_session is None:
        return _rpc_error(None, SESSION_NOT_FOUND, "Session not found", status=404)
    runtime = _runtime(state, name)
    if runtime is None:
        return await _not_running(state, name, None)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    async def subscriber(message: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(message)

    async def stream() -> AsyncIterator[bytes]:
        runtime.subscribers.add(subscriber)
        # mcpd shutting down, or this session closed (its token revoked): the stream ends at once
        closing = asyncio.create_task(_first(sessions.closing.wait(), proxy_session.ended.wait()))
        getter: asyncio.Task[dict[str, Any]] | None = None
        try:
            yield b": stream open\n\n"
            while sessions.get(session_id, name, _owner(principal)) is not None:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, closing}, timeout=HEARTBEAT_SECONDS, return_when="FIRST_COMPLETED"
                )
                if getter in done:
                    yield _sse(getter.result())
                    continue
                getter.cancel()
                if closing in done:
                    return
                yield b": ping\n\n"
        finally:
            # a client gone mid-wait leaves its getter waiting on a queue nobody holds any more
            if getter is not None:
                getter.cancel()
            closing.cancel()
            runtime.subscribers.discard(subscriber)

    return _sse_response(stream())


async def _delete(request: Request, name: str, project: str | None) -> Response:
    state = get_state(request)
    principal = authenticated(request)
    await _authorize(state, principal, name, project)
    holder = await _holder_elsewhere(state, name, request)
    if holder is not None:
        return await _relay(request, holder)
    session_id = request.headers.get(SESSION_HEADER)
    sessions = _sessions(state)
    if not session_id or sessions.get(session_id, name, _owner(principal)) is None:
        return _rpc_error(None, SESSION_NOT_FOUND, "Session not found", status=404)
    sessions.close(session_id)
    return Response(status_code=200)
