"""mcplocal's end of the data-plane link (`core/link_protocol.py`): one WebSocket to mcpd, opened on
first use and again after it drops, multiplexing every caller's calls.

A call is `Upstream.request` carried across: its notifications (`note`) go to the caller's stream as
they arrive, the upstream's questions (`ask`) are put to the caller's client and answered (`reply`),
and a call whose caller goes away is cancelled at mcpd (`cancel`). Tokens are authenticated on the
link once per connection; a call made with a token mcpd no longer holds authenticates again and is
retried once. When the link drops, every call still waiting fails at once (never hangs) and the
owner is told (`on_changed`: what was cached may have changed meanwhile).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

import mcpctl
from mcpctl.core import link_protocol as wire
from mcpctl.mcplocal.ports import Message, Notify, Relay

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
PING_SECONDS = 20.0
AUTH_TIMEOUT = 30.0
HOLD_MARGIN_SECONDS = 2.0

EventHandler = Callable[[str, Message], Awaitable[None]]


class LinkDown(Exception):
    """mcpd cannot be reached, or the link dropped before the answer."""


class LinkRefused(Exception):
    """mcpd does not (or no longer does) accept the token on the link."""


class CallFailed(Exception):
    """mcpd could not get an answer (the upstream is down, unreachable, timed out; or bad input)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass
class _Call:
    future: asyncio.Future[Message]
    notify: Notify | None
    relay: Relay | None


@dataclass
class _Connection:
    socket: ClientConnection
    authed: dict[str, float] = field(default_factory=dict)  # token sha → until when mcpd holds it
    calls: dict[int, _Call] = field(default_factory=dict)
    auths: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    gone: bool = False
    outbox: collections.deque[str] = field(default_factory=collections.deque)
    writer: asyncio.Task[None] | None = None

    @property
    def batching(self) -> bool:
        return self.socket.subprotocol == wire.SUBPROTOCOL

    def post(self, frame: dict[str, Any]) -> None:
        self.post_text(wire.encode(frame))

    def post_text(self, text: str) -> None:
        """Queue a frame; the writer, started for the frames queued in this turn of the event loop,
        sends them together (one message when the link batches). A link that drops fails what was
        waiting on it (the reader's end), so nothing here waits for the write."""
        if self.gone:
            raise LinkDown("the link to mcpd dropped")
        self.outbox.append(text)
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        try:
            while self.outbox and not self.gone:
                await self.socket.send(wire.batch(self.outbox, self.batching))
        except websockets.ConnectionClosed:
            self.gone = True  # the reader sees the close too, and fails what waits on the link
        except Exception:  # not expected: the link is closed, so that the reader fails the waiting
            logger.exception("a frame could not be sent on the link to mcpd")
            self.gone = True
            with contextlib.suppress(Exception):
                await self.socket.close()
        finally:
            self.writer = None


class LinkClient:
    def __init__(
        self,
        mcpd_url: str,
        *,
        on_event: EventHandler | None = None,
        on_changed: Callable[[], None] | None = None,
        on_ended: Callable[[str], None] | None = None,
    ):
        base = mcpd_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        self.url = ("wss" if scheme == "https" else "ws") + "://" + rest + wire.LINK_PATH
        self.on_event, self.on_changed, self.on_ended = on_event, on_changed, on_ended
        self._ids = itertools.count(1)
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # ---- the connection ----------------------------------------------------------------------------

    async def _connect(self) -> _Connection:
        current = self._connection
        if current is not None and not current.gone:
            return current
        async with self._connecting:
            current = self._connection
            if current is not None and not current.gone:
                return current
            if self._closed:
                raise LinkDown("mcplocal is shutting down")
            try:
                socket = await connect(
                    self.url,
                    max_size=wire.MAX_FRAME_BYTES,
                    compression=None,
                    open_timeout=CONNECT_TIMEOUT,
                    ping_interval=PING_SECONDS,
                    ping_timeout=PING_SECONDS,
                    proxy=None,
                    user_agent_header=f"mcplocal/{mcpctl.__version__}",
                    subprotocols=[websockets.Subprotocol(wire.SUBPROTOCOL)],
                )
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                raise LinkDown(f"cannot open the link to mcpd at {self.url}: {type(exc).__name__}") from None
            connection = _Connection(socket)
            connection.reader = asyncio.create_task(self._read(connection))
            first = self._connection is None
            self._connection = connection
            if not first and self.on_changed is not None:
                self.on_changed()  # what happened while the link was down was not heard
            return connection

    async def close(self) -> None:
        self._closed = True
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.socket.close()
            if connection.reader is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connection.reader
        for task in list(self._tasks):
            task.cancel()

    async def _read(self, connection: _Connection) -> None:
        reason = "closed"
        try:
            async for message in connection.socket:
                for text in wire.frames(message if isinstance(message, str) else message.decode()):
                    try:
                        frame = wire.decode(text)
                    except wire.BadFrame as exc:
                        logger.warning("mcpd sent a bad frame on the link: %s", exc)
                        continue
                    try:
                        await self._dispatch(connection, frame)
                    except Exception:  # boundary: one frame must not end the link
                        logger.exception("a frame from mcpd could not be handled")
        except websockets.ConnectionClosed as exc:
            reason = str(exc)
        finally:
            connection.gone = True
            calls, connection.calls = connection.calls, {}
            for call in calls.values():
                if not call.future.done():
                    call.future.set_exception(LinkDown(f"the link to mcpd dropped ({reason})"))
            auths, connection.auths = connection.auths, {}
            for waiting in auths.values():
                if not waiting.done():
                    waiting.set_exception(LinkDown(f"the link to mcpd dropped ({reason})"))
            if not self._closed:
                logger.warning("the link to mcpd dropped (%s); it is opened again on the next call", reason)

    async def _dispatch(self, connection: _Connection, frame: dict[str, Any]) -> None:
        kind = frame["t"]
        call = connection.calls.get(frame.get("id"))  # type: ignore[arg-type]
        if kind == wire.ANSWER:
            message = frame.get("message")
            if call is not None and not call.future.done():
                call.future.set_result(message if isinstance(message, dict) else {})
        elif kind == wire.NOTE:
            message = frame.get("message")
            if call is not None and call.notify is not None and isinstance(message, dict):
                await call.notify(message)
        elif kind == wire.FAILURE:
            if call is not None and not call.future.done():
                text = str(frame.get("message", "mcpd could not answer"))
                if frame.get("reason") == wire.TOKEN_NOT_AUTHENTICATED:
                    call.future.set_exception(LinkRefused(text))
                else:
                    code = frame.get("code")
                    call.future.set_exception(CallFailed(text, code if isinstance(code, int) else -32000))
        elif kind == wire.ASK:
            message = frame.get("message")
            if isinstance(message, dict):
                relay = call.relay if call is not None else None
                self._spawn(self._answer(connection, frame.get("ask"), relay, message))
        elif kind == wire.AUTHED:
            waiting = connection.auths.pop(frame.get("ask"), None)  # type: ignore[arg-type]
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)
        elif kind == wire.EVENT:
            server, message = frame.get("server"), frame.get("message")
            if self.on_event is not None and isinstance(server, str) and isinstance(message, dict):
                self._spawn(self.on_event(server, message))
        elif kind == wire.CHANGED:
            connection.authed.clear()
            if self.on_changed is not None:
                self.on_changed()
        elif kind == wire.ENDED:
            sha = frame.get("token")
            if isinstance(sha, str):
                connection.authed.pop(sha, None)
                if self.on_ended is not None:
                    self.on_ended(sha)

    async def _answer(self, connection: _Connection, key: Any, relay: Relay | None, message: Message) -> None:
        if relay is None:
            method = message.get("method")
            answer: Message = {"error": {"code": -32601, "message": f"the caller cannot answer {method}"}}
        else:
            try:
                answer = await relay(message)
            except Exception as exc:  # boundary: the client failed; the upstream gets an error
                answer = {"error": {"code": -32603, "message": f"the client could not answer: {exc}"}}
        with contextlib.suppress(LinkDown):
            connection.post({"t": wire.REPLY, "ask": key, "message": answer})

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- what callers ask ----------------------------------------------------------------------------

    async def authenticate(self, bearer: str) -> dict[str, Any]:
        """Present the token on the link; mcpd's introspection of it (the REST introspection body).
        LinkDown when mcpd cannot be reached or cannot check tokens now."""
        connection = await self._connect()
        key = next(self._ids)
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        connection.auths[key] = waiting
        try:
            connection.post({"t": wire.AUTH, "ask": key, "bearer": bearer})
            async with asyncio.timeout(AUTH_TIMEOUT):
                frame = await waiting
        except TimeoutError:
            raise LinkDown("mcpd did not answer the token check in time") from None
        finally:
            connection.auths.pop(key, None)
        if "unavailable" in frame:
            raise LinkDown(f"mcpd cannot check tokens now: {frame['unavailable']}")
        body = frame.get("introspection")
        body = body if isinstance(body, dict) else {"ok": False, "reason": "unknown"}
        if body.get("ok"):
            hold = frame.get("holdSeconds")
            hold = float(hold) if isinstance(hold, int | float) else 0.0
            # a little early, so a call rarely meets an authentication mcpd has just dropped
            until = time.monotonic() + max(0.0, hold - HOLD_MARGIN_SECONDS)
            connection.authed[hashlib.sha256(bearer.encode()).hexdigest()] = until
        return body

    async def request(
        self,
        bearer: str,
        server: str,
        method: str,
        params: dict[str, Any] | None,
        *,
        notify: Notify | None,
        relay: Relay | None,
        session: str | None,
    ) -> Message:
        """The upstream's JSON-RPC answer (the server's own call timeout applies at mcpd). LinkDown,
        LinkRefused (the token is not accepted any more) or CallFailed otherwise; cancelling this
        cancels the call at mcpd."""
        sha = hashlib.sha256(bearer.encode()).hexdigest()
        frame: dict[str, Any] = {"t": wire.CALL, "token": sha, "server": server, "method": method}
        if params is not None:
            frame["params"] = params
        if session:
            frame["session"] = session[:128]
        if relay is not None:
            frame["relay"] = True
        for attempt in (1, 2):
            connection = await self._connect()
            if connection.authed.get(sha, 0.0) <= time.monotonic():
                body = await self.authenticate(bearer)
                if not body.get("ok"):
                    raise LinkRefused(str(body.get("reason") or "unknown"))
            try:
                return await self._call(
                    connection, frame, _Call(asyncio.get_running_loop().create_future(), notify, relay)
                )
            except LinkRefused:
                connection.authed.pop(sha, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _call(self, connection: _Connection, frame: dict[str, Any], call: _Call) -> Message:
        call_id = next(self._ids)
        text = wire.encode({**frame, "id": call_id})
        if len(text) > wire.MAX_INBOUND_FRAME_BYTES:
            raise CallFailed(
                f"the request is larger than the data-plane link takes ({len(text)} bytes)", -32600
            )
        connection.calls[call_id] = call
        try:
            connection.post_text(text)
            return await call.future
        except asyncio.CancelledError:
            if not connection.gone:
                with contextlib.suppress(LinkDown):
                    connection.post({"t": wire.CANCEL, "id": call_id})
            raise
        finally:
            connection.calls.pop(call_id, None)
