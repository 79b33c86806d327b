"""A POST's answer on the project endpoint: `application/json` when the reply is all there is, an SSE
stream only when something else comes first (progress, a log message, a sampling or elicitation
request of the upstream) or the reply takes longer than `STREAM_AFTER_SECONDS`.

The SDK's Streamable HTTP transport answers every POST with an SSE stream unless the whole session
is in JSON-response mode, which loses the request-scoped back-channel (server-to-client requests
fail, notifications are dropped). Deciding per request from what the transport emits keeps the SDK's
semantics for every message and spares the common call sse-starlette's machinery (four tasks, a
rendezvous stream per event, a chunked body): measured in docs/mcplocal.md "Performance". The SDK
builds its SSE responses through `mcp.server.streamable_http.EventSourceResponse`; `install()` puts
`ReplyOrStream` there (GET streams and replays still get sse-starlette's response).

Only sessionless POSTs (the 2026-07-28 era, and a legacy `initialize`) get the JSON answer: a legacy
session's POSTs keep the SDK's stream, whose headers go out as soon as the request is taken. Through a
balancer, a replica that dies mid-call then breaks a started stream, and the SDK's client fails that
one call; with a JSON answer nothing had started, the balancer closed the connection without a
response, and the SDK's legacy client did not survive that (its session ended; found by the
loopback cluster's killed-replica test).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream
from mcp.server import streamable_http
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.event import ensure_bytes
from starlette.types import Receive, Scope, Send

_SESSION_HEADER = "mcp-session-id"
STREAM_AFTER_SECONDS = 1.0  # a slow reply gets its stream (headers, pings) as the SDK would send it
_HOP_HEADERS = {"content-type", "cache-control", "connection"}

Event = dict[str, Any]
Sender = Callable[[], Coroutine[Any, Any, None]]


class ReplyOrStream:
    """Takes `EventSourceResponse`'s arguments as the SDK passes them (the event stream, the
    coroutine that feeds it, the headers)."""

    def __init__(
        self,
        content: ObjectReceiveStream[Event],
        *,
        data_sender_callable: Sender | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ):
        self.content, self.sender = content, data_sender_callable
        self.headers, self.options = dict(headers or {}), options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST" or self.sender is None or _in_legacy_session(scope):
            await self._stream((), scope, receive, send, self.sender)
            return
        first: Event | None = None
        ended = False
        async with anyio.create_task_group() as group:
            group.start_soon(self.sender)
            group.start_soon(cancel_on_disconnect, receive, group.cancel_scope)
            with anyio.move_on_after(STREAM_AFTER_SECONDS):
                try:
                    first = await self.content.receive()
                except anyio.EndOfStream:
                    ended = True
            if first is not None and _is_reply(first):
                await self._reply(first["data"], send)
                group.cancel_scope.cancel()  # the sender is done; the disconnect watch is not needed
                return
            # something else first: the stream, with the sender still feeding it
            await self._stream(() if first is None else (first,), scope, receive, send, None, ended)
            group.cancel_scope.cancel()

    async def _reply(self, data: str, send: Send) -> None:
        body = data.encode()
        headers = [
            (k.lower().encode(), v.encode()) for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stream(
        self,
        pending: tuple[Event, ...],
        scope: Scope,
        receive: Receive,
        send: Send,
        sender: Sender | None,
        ended: bool = False,
    ) -> None:
        """A POST's SSE stream: the SDK's events as sse-starlette frames them (its headers, separator
        and pings), written by this task. sse-starlette's response runs five tasks and a lock per
        stream; a POST's stream needs the sender, a disconnect watch and this loop. A POST's stream
        ends with its call: on shutdown it is not cut at once but within the server's graceful
        shutdown (uvicorn's `timeout_graceful_shutdown`)."""
        if scope.get("method") != "POST":
            content = _chain(pending, None if ended else self.content)
            response = EventSourceResponse(
                content, headers=self.headers, data_sender_callable=sender, **self.options
            )
            await response(scope, receive, send)
            return
        # framed once per header set: the session's id (unique per session) is added apart
        session = [(k, v) for k, v in self.headers.items() if k.lower() == _SESSION_HEADER]
        shared = {k: v for k, v in self.headers.items() if k.lower() != _SESSION_HEADER}
        stream = PostStream(
            send, shared, self.options, [(k.lower().encode(), v.encode()) for k, v in session]
        )
        async with anyio.create_task_group() as group:
            if sender is not None:
                group.start_soon(sender)
            group.start_soon(cancel_on_disconnect, receive, group.cancel_scope)
            await stream.start()
            for event in pending:
                await stream.event(event)
            while not ended:
                with anyio.move_on_after(stream.ping_seconds) as waiting:
                    try:
                        event = await self.content.receive()
                    except anyio.EndOfStream:
                        break
                await (stream.ping() if waiting.cancelled_caught else stream.event(event))
            await stream.end()
            group.cancel_scope.cancel()


class PostStream:
    """The SSE answer to one POST, framed as sse-starlette frames it (its headers, separator and
    ping comments), written by the caller's own task."""

    def __init__(
        self,
        send: Send,
        headers: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ):
        self._send = send
        self._sep, raw_headers, self.ping_seconds = _framing(
            tuple(headers.items()), tuple((options or {}).items())
        )
        self._headers = [*raw_headers, *extra_headers]

    async def start(self) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})

    async def event(self, event: Event) -> None:
        """One event: `{"event": "message", "data": <JSON text>}` (and `id`), as the SDK makes them."""
        await _send_chunk(self._send, ensure_bytes(event, self._sep))

    async def ping(self) -> None:
        await _send_chunk(
            self._send, ServerSentEvent(comment=f"ping - {datetime.now(UTC)}", sep=self._sep).encode()
        )

    async def end(self, event: Event | None = None) -> None:
        """The end of the stream, with its last event if any (one body part)."""
        body = b"" if event is None else ensure_bytes(event, self._sep)
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


@functools.lru_cache(maxsize=256)
def _framing(
    headers: tuple[tuple[str, str], ...], options: tuple[tuple[str, Any], ...]
) -> tuple[str, list[tuple[bytes, bytes]], float]:
    """sse-starlette's separator, response headers and ping interval for these headers."""
    framing = EventSourceResponse(_chain((), None), headers=dict(headers), **dict(options))
    return framing.sep, list(framing.raw_headers), framing.ping_interval or math.inf


async def _send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _chain(pending: tuple[Event, ...], rest: ObjectReceiveStream[Event] | None) -> AsyncIterator[Event]:
    for event in pending:
        yield event
    if rest is not None:
        async for event in rest:
            yield event


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _in_legacy_session(scope: Scope) -> bool:
    return any(name == b"mcp-session-id" for name, _ in scope.get("headers", ()))


def _is_reply(event: Event) -> bool:
    """A JSON-RPC response or error with no event id (an id is for resuming a stream: kept as SSE)."""
    if (
        event.get("event") != "message"
        or event.get("id") is not None
        or not isinstance(event.get("data"), str)
    ):
        return False
    try:
        message = json.loads(event["data"])
    except ValueError:
        return False
    return (
        isinstance(message, dict) and "method" not in message and ("result" in message or "error" in message)
    )


def install() -> None:
    """Make the SDK's Streamable HTTP transport answer POSTs through `ReplyOrStream` (idempotent)."""
    streamable_http.EventSourceResponse = ReplyOrStream  # type: ignore[attr-defined,assignment]
