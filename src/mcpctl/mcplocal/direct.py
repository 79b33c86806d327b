"""A legacy session's `tools/call`, answered without the SDK's per-request machinery.

The SDK's Streamable HTTP server takes each POST of a 2025-11-25 session through its transport (a
request stream and an SSE writer task), its JSON-RPC dispatcher and server runner (a task and
cancel scopes per request) and back: measured, that was about 1 ms of a gateway's 1.6 ms of CPU per
`tools/call` (docs/performance.md). For the common call (a session this process holds, a
well-formed `tools/call` without a progress token) `DirectCalls` checks what the SDK checks (Host and
Origin, Accept, Content-Type, protocol version, body size, the session's token, the request's shape
and params), runs the endpoint's own `tools/call` handler (endpoint.py: the same caller, audit,
cancellation, log relay and upstream requests) and writes its answer on the POST's SSE stream as the
SDK frames it (replies.PostStream). Everything else, and anything unusual, goes to the SDK as before
(the body it read handed on unchanged).

Mid-call, what the handler sends the client through its session goes on this POST's stream:
progress and log notifications, and server-to-client requests (sampling, elicitation, roots), whose
answers the client POSTs to the session: those with an id of a request made here are taken here
(202, as the SDK answers them). A `notifications/cancelled` for a call in flight here cancels it
(its stream ends without an answer, as the SDK ends one).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
import pydantic_core
from mcp.server.streamable_http import CONTENT_TYPE_JSON, MCP_SESSION_ID_HEADER, check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp_types import methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from mcpctl.core import jsontext
from mcpctl.mcplocal.audience import LiveSession
from mcpctl.mcplocal.endpoint import Endpoint
from mcpctl.mcplocal.http_protocol import DISCONNECTED
from mcpctl.mcplocal.ports import Caller
from mcpctl.mcplocal.replies import PostStream
from mcpctl.mcplocal.sessions import FairSessionManager

logger = logging.getLogger(__name__)

METHOD = "tools/call"
ID_PREFIX = "mcpctl-"  # ids of the server-to-client requests made here (the SDK's own are numbers)
# The SDK's headers for a POST's SSE answer (mcp.server.streamable_http)
_SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "Connection": "keep-alive",
    "Content-Type": "text/event-stream",
}
_SESSION_HEADER = MCP_SESSION_ID_HEADER.encode()


class DirectCalls:
    def __init__(
        self,
        endpoint: Endpoint,
        sessions: FairSessionManager,
        security: TransportSecuritySettings,
        max_body_bytes: int,
    ):
        self.endpoint, self.sessions, self.max_body_bytes = endpoint, sessions, max_body_bytes
        self.security = TransportSecurityMiddleware(security)
        self._asked: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._calls: dict[tuple[str, str], anyio.CancelScope] = {}
        self._ids = itertools.count(1)

    async def handle(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> Receive | None:
        """Answer the request here (None) when it is a direct call or the client's answer to a
        request made by one; otherwise the `receive` to hand the SDK."""
        request = Request(scope, receive)
        session_id = self._session(request, caller)
        if session_id is None:
            return receive
        if await self.security.validate_request(request, is_post=True) is not None:
            return receive  # the SDK answers it (the same check, the same error)
        body, whole = await _body(receive, self.max_body_bytes)
        if whole is None:
            return None  # the client went away before its request was whole: nothing to answer
        if not whole:  # larger than the limit: the SDK's limit answers it
            return _replay(body, receive, more=True)
        try:
            message = pydantic_core.from_json(body)  # as the SDK parses it (UTF-8 only)
        except ValueError:
            message = None
        if isinstance(message, dict):
            if await self._taken(message, session_id, send):
                return None
            call = _direct_call(message)
            live = self.endpoint.router.sessions.get(session_id)
            transport = self.sessions._server_instances.get(session_id)
            key = (session_id, _key(call.id)) if call is not None else None
            if (
                call is not None
                and key is not None
                and live is not None
                and transport is not None
                and not transport.is_terminated
                and key not in self._calls  # the same id twice: the SDK's
            ):
                logger.debug("tools/call %s of session %s answered directly", key[1], session_id[:8])
                await self._call(request, receive, send, call, live, transport, key)
                return None
        return _replay(body, receive)

    def end_session(self, session_id: str) -> None:
        """The session ended (DELETE, idle, evicted, its token ended): its calls end with it, as the
        SDK's end with their session."""
        for (owner, _), call in list(self._calls.items()):
            if owner == session_id:
                call.cancel()

    def _session(self, request: Request, caller: Caller) -> str | None:
        """The session a POST may be answered here for: one this process holds, opened with the
        caller's token, the request in its era, with a body the SDK would read."""
        if request.method != "POST" or self.endpoint.server.middleware:
            return None
        headers = dict(request.scope.get("headers", ()))
        session_id = headers.get(_SESSION_HEADER, b"").decode("latin-1")
        transport = self.sessions._server_instances.get(session_id) if session_id else None
        live = self.endpoint.router.sessions.get(session_id) if session_id else None
        if transport is None or transport.is_terminated or live is None:
            return None
        if transport.idle_scope is not None and transport.idle_scope.cancel_called:
            return None  # its idle time ran out: the SDK answers as it ends it
        if live.caller.token_sha != caller.token_sha:
            return None  # the SDK answers another token's session as one that does not exist
        version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS or version != live.protocol_version:
            return None
        try:
            length = int(headers.get(b"content-length", b""))
        except ValueError:
            return None
        if not 0 < length <= self.max_body_bytes:
            return None
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if CONTENT_TYPE_JSON not in (part.strip() for part in content_type.split(";")[0].split(",")):
            return None  # the SDK's transport answers 415
        has_json, has_sse = check_accept_headers(request)
        return session_id if has_json and has_sse else None

    async def _taken(self, message: dict[str, Any], session_id: str, send: Send) -> bool:
        """The client's answer to a request made here, or its cancellation of a call in flight
        here: taken (202), as the SDK takes such messages."""
        if "method" not in message and isinstance(message.get("id"), str):
            waiting = self._asked.get((session_id, message["id"]))
            if waiting is None:
                return False
            if not waiting.done():
                waiting.set_result(message)
        elif message.get("method") == "notifications/cancelled":
            params = message.get("params")
            request_id = params.get("requestId") if isinstance(params, dict) else None
            call = self._calls.get((session_id, _key(request_id))) if request_id is not None else None
            if call is None:
                return False
            call.cancel()
        else:
            return False
        headers = [(b"content-type", b"application/json"), (_SESSION_HEADER, session_id.encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True

    async def _call(
        self,
        request: Request,
        receive: Receive,
        send: Send,
        call: _Call,
        live: LiveSession,
        transport: Any,
        key: tuple[str, str],
    ) -> None:
        session_id = live.key
        stream = PostStream(send, _SSE_HEADERS, extra_headers=[(_SESSION_HEADER, session_id.encode())])
        channel = _Channel(self, stream, session_id, call.id, live.capabilities)
        context = _Context(request, channel, call.id, live.protocol_version or "", call.params)
        await stream.start()
        with _in_flight(transport):
            await self._stream(stream, receive, context, call, key)

    async def _stream(
        self, stream: PostStream, receive: Receive, context: _Context, call: _Call, key: tuple[str, str]
    ) -> None:
        """The call, cancelled when the client goes away: heard from the server's DISCONNECTED
        future when it has one (http_protocol), else from a plain asyncio task that waits in
        `receive()` (an anyio task group's cancel formats a task's repr, measured at 1.3% of mcpd
        per call)."""
        answer: dict[str, Any] | None = None
        gone = False
        with anyio.CancelScope() as cancelled:

            def went(watched: asyncio.Future[None]) -> None:
                nonlocal gone
                if not watched.cancelled():
                    gone = True
                    cancelled.cancel()

            self._calls[key] = cancelled
            lost = context.request.scope.get("extensions", {}).get(DISCONNECTED)
            watch = lost if lost is not None else asyncio.ensure_future(_disconnected(receive))
            watch.add_done_callback(went)
            try:
                answer = await self._answer(context, call)
            finally:
                if watch is lost:
                    watch.remove_done_callback(went)
                else:
                    watch.cancel()
                self._calls.pop(key, None)
        if not gone:  # a client that went away gets nothing more
            # none when the client cancelled it: the stream ends without an answer
            await stream.end(None if answer is None else _event(answer))

    async def _answer(self, context: _Context, call: _Call) -> dict[str, Any]:
        """The JSON-RPC answer, as the SDK's server runner and dispatcher make it."""
        version = context.protocol_version
        try:
            if not _plain_params(call.params):
                methods.validate_client_request(METHOD, version, call.params)
                types.CallToolRequestParams.model_validate(call.params, by_name=False)
            result = await self.endpoint.direct_tool_call(context)
            try:
                dumped = _plain_result(result)
                if dumped is None:
                    dumped = methods.serialize_server_result(METHOD, version, dict(result))
            except ValidationError:
                logger.exception("handler for %r returned an invalid result", METHOD)
                raise MCPError(
                    code=types.INTERNAL_ERROR, message="Handler returned an invalid result"
                ) from None
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                logger.exception("handler for %r raised", METHOD)
                error = types.ErrorData(code=0, message=str(exc))
            body = error.model_dump(by_alias=True, mode="json", exclude_none=True)
            return {"jsonrpc": "2.0", "id": call.id, "error": body}
        return {"jsonrpc": "2.0", "id": call.id, "result": dumped}

    async def ask(self, session_id: str, stream: PostStream, message: dict[str, Any]) -> dict[str, Any]:
        """Put a server-to-client request on this stream and wait for the client's answer."""
        request_id = f"{ID_PREFIX}{next(self._ids)}"
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._asked[(session_id, request_id)] = waiting
        try:
            await stream.event(_event({"jsonrpc": "2.0", "id": request_id, **message}))
            return await waiting
        finally:
            self._asked.pop((session_id, request_id), None)


@dataclass(frozen=True)
class _Call:
    id: str | int
    params: dict[str, Any]


def _direct_call(message: Mapping[str, Any]) -> _Call | None:
    """A well-formed JSON-RPC `tools/call` this module answers (not one with a progress token: its
    progress goes through the SDK)."""
    request_id, params = message.get("id"), message.get("params")
    if message.get("jsonrpc") != "2.0" or message.get("method") != METHOD or set(message) - _REQUEST_KEYS:
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, str | int) or not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    if meta is not None and (not isinstance(meta, dict) or "progressToken" in meta):
        return None
    return _Call(request_id, params)


_REQUEST_KEYS = {"jsonrpc", "id", "method", "params"}


_PLAIN_PARAMS = frozenset({"name", "arguments"})


def _plain_params(params: dict[str, Any]) -> bool:
    """Params that pass the SDK's validation of every handshake-era version by their shape alone
    (a string name, arguments an object or left out): the two pydantic checks, 15 µs per call, are
    skipped for them; anything else is validated as the SDK validates it."""
    if not isinstance(params.get("name"), str) or not params.keys() <= _PLAIN_PARAMS:
        return False
    arguments = params.get("arguments")
    return arguments is None or type(arguments) is dict


def _plain_result(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """`serialize_server_result`'s dump of the common result (text content only, `isError` a bool
    or left out), built without pydantic (17 µs per call); None for anything else. The dump puts a
    text item's keys in the model's order (`text`, `type`) and `content` before `isError`;
    tests/unit/test_direct_plain.py holds it to the SDK's own dump."""
    content = result.get("content")
    if type(content) is not list or not result.keys() <= _PLAIN_RESULT:
        return None
    items = []
    for item in content:
        if type(item) is not dict or len(item) != 2 or item.get("type") != "text":
            return None
        text = item.get("text")
        if type(text) is not str:
            return None
        items.append({"text": text, "type": "text"})
    dumped: dict[str, Any] = {"content": items}
    if "isError" in result:
        flag = result["isError"]
        if type(flag) is not bool:
            return None
        dumped["isError"] = flag
    return dumped


_PLAIN_RESULT = frozenset({"content", "isError"})


def _key(request_id: Any) -> str:
    return json.dumps(request_id)  # 1 and "1" are different requests


def _event(message: dict[str, Any]) -> dict[str, Any]:
    """The SSE event of one message (core.jsontext)."""
    return {"event": "message", "data": jsontext.dumps_text(message)}


class _Channel:
    """What the endpoint's handler calls on the SDK's session mid-call, on this POST's stream."""

    def __init__(
        self,
        calls: DirectCalls,
        stream: PostStream,
        session_id: str,
        request_id: str | int,
        capabilities: Any,
    ):
        self._calls, self._stream, self._session_id = calls, stream, session_id
        self._request_id = request_id
        self.client_capabilities = capabilities

    async def send_log_message(
        self, level: Any, data: Any, logger: str | None = None, related_request_id: Any = None
    ) -> None:
        params = types.LoggingMessageNotificationParams(level=level, data=data, logger=logger)
        await self.send_notification(types.LoggingMessageNotification(params=params))

    async def send_notification(self, notification: BaseModel, related_request_id: Any = None) -> None:
        body = notification.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self._stream.event(_event({"jsonrpc": "2.0", **body}))

    async def send_request(
        self, request: BaseModel, result_type: type[BaseModel], metadata: ServerMessageMetadata | None = None
    ) -> BaseModel:
        body = request.model_dump(by_alias=True, mode="json", exclude_none=True)
        answer = await self._calls.ask(self._session_id, self._stream, body)
        error = answer.get("error")
        if isinstance(error, dict):
            raise MCPError.from_error_data(types.ErrorData.model_validate(error))
        return result_type.model_validate(answer.get("result"))


@dataclass(frozen=True)
class _Context:
    """The parts of the SDK's ServerRequestContext the endpoint's tools/call handler reads."""

    request: Request
    session: _Channel
    request_id: str | int
    protocol_version: str
    params: dict[str, Any]


@contextlib.contextmanager
def _in_flight(transport: Any) -> Iterator[None]:
    """The session's idle countdown stands still while the call runs, as the SDK's transport holds
    it for each request it serves (`StreamableHTTPServerTransport.handle_request`)."""
    idle, timeout = transport.idle_scope, transport._idle_timeout
    if idle is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1
    idle.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1
        if not transport._requests_in_flight:
            idle.deadline = anyio.current_time() + timeout


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _body(receive: Receive, limit: int) -> tuple[bytes, bool | None]:
    """The body and whether it is whole: False when it grew past `limit` (the rest unread), None
    when the client went away first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """`receive`, with what was read of the body given back first (`more`: the rest follows)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
