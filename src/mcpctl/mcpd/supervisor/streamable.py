"""`StreamableHttpLink`: a `transport: http` upstream over Streamable HTTP (2025-03-26 and later),
on mcpd's own keep-alive HTTP/1.1 pool (http1.py).

Each message is a POST; a request's answer comes as one JSON body or on the POST's own event stream,
together with whatever the upstream sends about that request first (progress, log lines, its own
requests to the client): those are received with the request's id as `related`. The upstream's
session id (from the initialize answer) and the negotiated protocol version ride on every later
request; after `notifications/initialized` a GET opens the stream for messages unrelated to any
request; closing the link DELETEs the session. Like the SDK's client transport, which this replaces
for speed (http1.py says why):
- notifications and responses are sent in order: `send` returns once the upstream accepted one
  (its status line), as the SDK's writer awaited each POST;
- a request answered with an HTTP error gets a JSON-RPC error: the body's own when it is one, else
  "Session terminated" for a 404 on a session (the link then ends: the supervisor starts a new
  session), "Not Found" before one, a generic one otherwise; `202 Accepted` or an unexpected content
  type for a request is an error too;
- a same-origin 307/308 is followed, for every message (a 308 is remembered); any other redirect is
  not, and the error names the location;
- a request's event stream that ends without the answer is resumed by a GET with `Last-Event-ID`
  when its events had ids (twice in a row at most, as often as the server ends resumed streams
  cleanly: SSE polling), else the request gets an error;
- the GET stream reconnects (twice in a row at most) and ends for good on 405;
- no HTTP connection is opened until the first message: a server that cannot be reached fails
  `initialize`, which fails the instance's start with the reason.
A connection that cannot be opened closes the link (the upstream is gone, as a stdio child that
exited); a connection lost mid-answer fails that request only. What the upstream sends is bounded:
heads (http1.py), each answer or event (`MAX_BODY_BYTES`), what is read of a response nobody waits
for any more (`DRAIN_BYTES`, `DRAIN_SECONDS`), and messages not yet received (past `HIGH_WATER`
the connections stop reading until `receive` catches up). Values taken from the upstream into later
requests (session id, protocol version, event ids) are checked first. The URL in messages has no
query or user info (they may hold credentials).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Coroutine
from typing import Any

from mcpctl.core import jsontext
from mcpctl.mcpd.supervisor.http1 import HttpConnection, Pool, check_header
from mcpctl.mcpd.supervisor.http1 import request_head as _head
from mcpctl.mcpd.supervisor.links import MAX_LINE_BYTES, LinkClosed, Received, SpawnError
from mcpctl.mcpd.supervisor.sse import Event, EventStreamParser, EventTooLarge

logger = logging.getLogger(__name__)

# JSON-RPC codes the SDK's client transport uses for the same situations
CONNECTION_CLOSED = -32000
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700

MAX_BODY_BYTES = MAX_LINE_BYTES  # a JSON answer or one event: as much as a stdio line may carry
READ_IDLE_SECONDS = 300.0  # a stream silent this long is given up (the SDK's read timeout)
DRAIN_SECONDS = 1.0  # how long a response nobody waits for any more may take to end
DRAIN_BYTES = 64 * 1024  # and how much of it is read
HIGH_WATER, LOW_WATER = 1000, 100  # messages received but not yet taken: stop reading / read again
RECONNECT_ATTEMPTS = 2
RECONNECT_DELAY_SECONDS = 1.0
RETRY_SECONDS = (0.1, 60.0)  # a server's `retry:` is kept within these
DELETE_SECONDS = 2.0
MAX_REDIRECTS = 3
MAX_EVENT_ID = 256
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")


class StreamableHttpLink:
    pid: int | None = None

    def __init__(self, url: str, headers: dict[str, str], *, connect_timeout: float = 10.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpawnError("not an http(s) URL")
        try:
            port = parts.port or _default_port(parts.scheme)
            hostname = parts.hostname.encode("idna").decode("ascii")
        except (ValueError, UnicodeError) as exc:
            raise SpawnError(f"bad host or port in the URL: {exc}") from exc
        given = {name.lower() for name in headers}
        extra: dict[str, str] = {}
        if parts.username is not None and "authorization" not in given:  # as httpx did
            user = urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")
            extra["authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        if "user-agent" not in given:
            extra["user-agent"] = "mcpd"
        for name, value in headers.items():
            try:
                check_header(name, value)
            except ValueError as exc:
                raise SpawnError(str(exc)) from exc
        self.url = url
        self.display = f"{parts.scheme}://{hostname}:{port}{parts.path or '/'}"  # no credentials
        self._origin = (parts.scheme, hostname.lower(), port)
        self._target = _target(parts)
        host = hostname if ":" not in hostname else f"[{hostname}]"
        self._host_header = host if port == _default_port(parts.scheme) else f"{host}:{port}"
        self._configured = [(k, v) for k, v in {**headers, **extra}.items() if k.lower() not in _OWN_HEADERS]
        ssl = _ssl_context() if parts.scheme == "https" else None
        self._pool = Pool(hostname, port, ssl=ssl, connect_timeout=connect_timeout)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._incoming: asyncio.Queue[Received | None] = asyncio.Queue()
        self._paused = False
        self._reason: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefix: bytes | None = None  # the POST's request line and headers, up to content-length
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, url: str, headers: dict[str, str], *, connect_timeout: float = 10.0
    ) -> StreamableHttpLink:
        return cls(url, headers, connect_timeout=connect_timeout)

    @property
    def closed_reason(self) -> str | None:
        return self._reason

    @property
    def connections_opened(self) -> int:
        return self._pool.opened

    # ---- the Link protocol -----------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        if self._reason is not None:
            raise LinkClosed(self._reason)
        method = message.get("method")
        is_request = method is not None and "id" in message
        if method == "initialize":
            self.protocol_version = None
            self._prefix = None
        body = jsontext.dumps(message)
        exchange = _Post(
            self, message.get("id") if is_request else None, is_request, method == "initialize", body
        )
        await self._post(exchange, self._target)
        if not is_request:
            await exchange.accepted
        if method == "notifications/initialized":
            self._spawn(self._listen())

    async def receive(self) -> Received:
        item = await self._incoming.get()
        if self._paused and self._incoming.qsize() <= LOW_WATER:
            self._paused = False
            for connection in self._pool.connections():
                connection.resume_reading()
        if item is None:
            self._incoming.put_nowait(None)
            raise LinkClosed(self._reason or "connection closed")
        return item

    async def close(self) -> None:
        if self._reason is None:
            self._reason = "stopped"
        for task in list(self._tasks):
            task.cancel()
        if self.session_id is not None:
            with contextlib.suppress(Exception):  # best effort: the session ends with its idle timeout
                async with asyncio.timeout(DELETE_SECONDS):
                    await self._delete()
        self._pool.close()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._incoming.put_nowait(None)

    # ---- sending ---------------------------------------------------------------------------------

    def _headers(self, *, accept: str) -> list[tuple[str, str]]:
        headers = [("host", self._host_header), ("accept", accept)]
        if self.session_id is not None:
            headers.append(("mcp-session-id", self.session_id))
        if self.protocol_version is not None:
            headers.append(("mcp-protocol-version", self.protocol_version))
        return headers + self._configured

    def _post_prefix(self, target: str) -> bytes:
        """The POST's head up to its content-length; the one to the configured URL is kept until the
        session or the version changes."""
        if target == self._target and self._prefix is not None:
            return self._prefix
        prefix = _head("POST", target, [*self._headers(accept=_ACCEPT), ("content-type", "application/json")])
        if target == self._target:
            self._prefix = prefix
        return prefix

    async def _post(self, exchange: _Post, target: str) -> None:
        body = exchange.payload
        await self._start(
            exchange, self._post_prefix(target) + b"content-length: %d\r\n\r\n" % len(body) + body
        )

    async def _start(self, exchange: Any, request: bytes) -> None:
        try:
            connection = await self._pool.start(exchange, request)
        except (OSError, TimeoutError, ConnectionError) as exc:
            if self._reason is None:
                self._end(f"connection failed: cannot connect to {self.display}: {_describe(exc)}")
            raise LinkClosed(self._reason or "connection closed") from exc
        if self._paused:
            connection.pause_reading()
        if self._sweeper is None:
            self._sweeper = self._spawn(self._sweep())
        exchange.connection = connection

    def _end(self, reason: str) -> None:
        self._reason = self._reason or reason
        self._pool.close()
        self._incoming.put_nowait(None)

    async def _delete(self) -> None:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        head = _head("DELETE", self._target, self._headers(accept=_ACCEPT))
        await self._pool.start(_Status(done), head + b"\r\n")
        status = await done
        if status not in (200, 202, 204, 405):
            logger.debug("DELETE of the session at %s answered %s", self.display, status)

    # ---- receiving -------------------------------------------------------------------------------

    def deliver(self, message: Any, related: Any) -> bool:
        """Queue what the upstream sent; True when it is the answer to request `related`."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            logger.warning("%s sent something that is not a JSON-RPC message; ignored", self.display)
            return False
        self._incoming.put_nowait((message, related))
        if not self._paused and self._incoming.qsize() >= HIGH_WATER:
            self._paused = True
            for connection in self._pool.connections():
                connection.pause_reading()
        return "method" not in message and related is not None and _same_id(message.get("id"), related)

    def fail(self, request_id: Any, code: int, text: str) -> None:
        error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}
        self._incoming.put_nowait((error, request_id))

    def session_ended(self) -> None:
        """The upstream answered 404 on our session: it is gone, and a new one needs a new start
        (ended on the next turn, after the request's own error is queued)."""
        asyncio.get_running_loop().call_soon(self._end, "the upstream ended its session (HTTP 404)")

    def initialized(self, headers: dict[str, str], answer: Any) -> None:
        session = headers.get("mcp-session-id")
        if session is not None:
            if _header_safe(session, visible=True):
                self.session_id = session
            else:
                logger.warning("%s sent an invalid session id; ignored", self.display)
        result = answer.get("result") if isinstance(answer, dict) else None
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if isinstance(version, str) and _VERSION.fullmatch(version):
            self.protocol_version = version
        self._prefix = None

    def redirect(self, exchange: _Post, status: int, location: str) -> str | None:
        """The target to resend `exchange` to, or None (the location is not followed)."""
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.url, location))
        try:
            port = parts.port or _default_port(parts.scheme)
        except ValueError:
            return None
        if (parts.scheme, (parts.hostname or "").lower(), port) != self._origin:
            return None
        if exchange.redirects >= MAX_REDIRECTS:
            return None
        target = _target(parts)
        if status == 308:  # permanent: every later message goes there
            self._target, self._prefix = target, None
        return target

    def resend(self, exchange: _Post, target: str) -> None:
        self._spawn(self._resend(exchange.again(), target))

    async def _resend(self, exchange: _Post, target: str) -> None:
        with contextlib.suppress(LinkClosed):  # the link's end fails every request waiting on it
            await self._post(exchange, target)

    def resume(self, exchange: _Post) -> None:
        self._spawn(self._resume(exchange))

    async def _resume(self, exchange: _Post) -> None:
        attempts, last_id, retry = 0, exchange.last_event_id, exchange.retry_seconds
        try:
            while attempts < RECONNECT_ATTEMPTS:
                await asyncio.sleep(retry if retry is not None else RECONNECT_DELAY_SECONDS)
                stream = await self._get(exchange.request_id, last_id)
                if stream is None or stream.answered:
                    return
                last_id = stream.last_id or last_id
                retry = stream.retry_seconds if stream.retry_seconds is not None else retry
                attempts = 0 if stream.status == 200 and stream.ended_cleanly else attempts + 1
        except Exception:  # boundary: a resumption that fails must still settle its request
            logger.warning("resuming a request's stream from %s failed", self.display, exc_info=False)
        self.fail(
            exchange.request_id,
            CONNECTION_CLOSED,
            "SSE stream ended and reconnection attempts were exhausted",
        )

    async def _listen(self) -> None:
        """The GET stream: messages unrelated to a request, for the session's life."""
        attempts, last_id, retry = 0, None, None
        try:
            while attempts < RECONNECT_ATTEMPTS and self.session_id is not None:
                stream = await self._get(None, last_id)
                if stream is None or stream.status == 405:
                    return  # the server offers no GET stream
                last_id = stream.last_id or last_id
                retry = stream.retry_seconds if stream.retry_seconds is not None else retry
                attempts = 0 if stream.status == 200 and stream.ended_cleanly else attempts + 1
                await asyncio.sleep(retry if retry is not None else RECONNECT_DELAY_SECONDS)
        except Exception:  # boundary: the GET stream is best effort, as in the SDK
            logger.warning("the GET stream of %s failed", self.display, exc_info=False)

    async def _get(self, request_id: Any, last_id: str | None) -> _Stream | None:
        """One GET event stream, a request's resumed or the session's own, read to its end; None
        when the link is closed."""
        stream = _Stream(self, request_id)
        headers = self._headers(accept="text/event-stream")
        if last_id:
            headers.append(("last-event-id", last_id))
        try:
            await self._start(stream, _head("GET", self._target, headers) + b"\r\n")
        except LinkClosed:
            return None
        await stream.done
        return stream

    async def _sweep(self) -> None:
        """Give up on streams that have been silent for `READ_IDLE_SECONDS` (a GET stream then
        reconnects)."""
        while True:
            await asyncio.sleep(min(30.0, READ_IDLE_SECONDS / 4))
            now = time.monotonic()
            for connection in self._pool.busy():
                if now - connection.last_data > READ_IDLE_SECONDS:
                    connection.abort()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        if self._reason is not None:  # closed: nothing new starts
            work.close()
            return None
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class _Post:
    """One POSTed message's response."""

    def __init__(
        self, link: StreamableHttpLink, request_id: Any, is_request: bool, initialize: bool, payload: bytes
    ):
        self.link = link
        self.request_id = request_id
        self.is_request = is_request
        self.initialize = initialize
        self.payload = payload
        self.redirects = 0
        self.connection: HttpConnection | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.mode = "ignore"  # json | sse | error | ignore | redirected
        self.chunks: list[bytes] = []
        self.size = 0
        self.parser: EventStreamParser | None = None
        self.answered = False
        self.ended = False
        self.last_event_id: str | None = None
        self.retry_seconds: float | None = None
        self.accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain: asyncio.TimerHandle | None = None

    def again(self) -> _Post:
        post = _Post(self.link, self.request_id, self.is_request, self.initialize, self.payload)
        post.redirects = self.redirects + 1
        post.accepted = self.accepted
        return post

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers
        if status in (307, 308) and "location" in headers:
            target = self.link.redirect(self, status, headers["location"])
            if target is not None:
                self.mode = "redirected"
                self.link.resend(self, target)
                self._ignore()
                return
        _settle_future(self.accepted)
        if not self.is_request:
            if status >= 300:
                logger.debug("%s answered a notification or response with HTTP %s", self.link.display, status)
            self._ignore()
            return
        content_type = headers.get("content-type", "").lower()
        if 300 <= status < 400:
            location = headers.get("location", "")[:300]
            self._settle(
                INVALID_REQUEST,
                f"Redirect to {location} not followed; "
                "use that URL as the endpoint if it is the intended server",
            )
        elif status == 202:
            self._settle(INVALID_REQUEST, "server answered a request with 202 Accepted")
        elif status >= 400:
            self.mode = "error"
        elif content_type.startswith("application/json"):
            self.mode = "json"
        elif content_type.startswith("text/event-stream"):
            self.mode = "sse"
            self.parser = EventStreamParser(MAX_BODY_BYTES)
        else:
            self._settle(INVALID_REQUEST, f"Unexpected content type: {content_type[:100]}")

    def body(self, chunk: bytes) -> None:
        if self.mode == "sse":
            assert self.parser is not None
            try:
                events = self.parser.feed(chunk)
            except EventTooLarge as exc:
                self._settle(CONNECTION_CLOSED, f"SSE stream failed: {exc}")
                self._drop()
                return
            for event in events:
                self._event(event)
                if self.mode != "sse":
                    return
        elif self.mode in ("json", "error"):
            self.size += len(chunk)
            if self.size > MAX_BODY_BYTES:
                self._settle(PARSE_ERROR, f"an answer larger than {MAX_BODY_BYTES} bytes")
                self._drop()
                return
            self.chunks.append(chunk)
        else:  # read only to free the connection, and only so much
            self.size += len(chunk)
            if self.size > DRAIN_BYTES:
                self._drop()

    def _event(self, event: Event) -> None:
        self.last_event_id, self.retry_seconds = _position(event, self.last_event_id, self.retry_seconds)
        if event.event != "message" or not event.data:
            return
        try:
            message = jsontext.loads(event.data)
        except ValueError as exc:
            self._settle(PARSE_ERROR, f"Failed to parse SSE message: {exc}")
            return
        self._message(message)

    def _message(self, message: Any) -> None:
        if self.answered:
            return
        is_answer = isinstance(message, dict) and "method" not in message
        if is_answer and self.initialize and _same_id(message.get("id"), self.request_id):
            self.link.initialized(self.headers, message)
        if self.link.deliver(message, self.request_id):
            self.answered = True
            self._ignore()  # what follows the answer on its stream is not waited for

    def end(self) -> None:
        self.ended = True
        if self._drain is not None:
            self._drain.cancel()
        if not self.is_request or self.mode in ("redirected", "ignore"):
            return
        body = b"".join(self.chunks)
        if self.mode == "json":
            try:
                parsed = jsontext.loads(body)
            except ValueError as exc:
                self._settle(PARSE_ERROR, f"Failed to parse JSON response: {exc}")
                return
            for message in parsed if isinstance(parsed, list) else [parsed]:
                self._message(message)
        elif self.mode == "error":
            self._error_answer(body)
        if self.answered:
            return
        if self.mode == "sse" and self.last_event_id is not None:
            self.mode = "ignore"
            self.link.resume(self)
            return
        self._settle(CONNECTION_CLOSED, "SSE stream ended without a response")

    def _error_answer(self, body: bytes) -> None:
        if self.headers.get("content-type", "").lower().startswith("application/json"):
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
                if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                    answer = {"jsonrpc": "2.0", "id": self.request_id, "error": parsed["error"]}
                    self.answered = self.link.deliver(answer, self.request_id)
                    if self.status != 404 or self.link.session_id is None:
                        return
        if self.status == 404 and self.link.session_id is not None:
            self._settle(INVALID_REQUEST, "Session terminated")
            self.link.session_ended()
        elif self.status == 404:
            self._settle(METHOD_NOT_FOUND, "Not Found")
        else:
            self._settle(INTERNAL_ERROR, f"Server returned an error response (HTTP {self.status})")

    def fail(self, reason: str) -> None:
        self.ended = True
        if self._drain is not None:
            self._drain.cancel()
        if self.mode == "redirected":
            return
        _settle_future(self.accepted)
        if not self.is_request or self.answered:
            return
        if self.mode == "sse" and self.last_event_id is not None:
            self.mode = "ignore"
            self.link.resume(self)
            return
        self._settle(CONNECTION_CLOSED, f"upstream {reason} before the answer")

    def _settle(self, code: int, text: str) -> None:
        if self.is_request and not self.answered:
            self.answered = True
            self.link.fail(self.request_id, code, text)
        self._ignore()

    def _ignore(self) -> None:
        """Nothing more is wanted from this response: read what is left of it, briefly, so the
        connection can be reused, else close it."""
        if self.mode != "redirected":
            self.mode = "ignore"
        self.size = 0
        if not self.ended and self._drain is None:
            self._drain = asyncio.get_running_loop().call_later(DRAIN_SECONDS, self._drop)

    def _drop(self) -> None:
        _abort_own(self)


class _Stream:
    """A GET's event stream: the session's own (`request_id` None) or a request's, resumed."""

    def __init__(self, link: StreamableHttpLink, request_id: Any):
        self.link = link
        self.request_id = request_id
        self.connection: HttpConnection | None = None
        self.status: int | None = None
        self.parser = EventStreamParser(MAX_BODY_BYTES)
        self.last_id: str | None = None
        self.retry_seconds: float | None = None
        self.answered = False
        self.ended_cleanly = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def head(self, status: int, headers: dict[str, str]) -> None:
        streaming = headers.get("content-type", "").lower().startswith("text/event-stream")
        self.status = 415 if status == 200 and not streaming else status
        if self.status != 200:
            self._close()

    def body(self, chunk: bytes) -> None:
        if self.status != 200 or self.answered:
            return
        try:
            events = self.parser.feed(chunk)
        except EventTooLarge:
            self._close()
            return
        for event in events:
            self.last_id, self.retry_seconds = _position(event, self.last_id, self.retry_seconds)
            if event.event != "message" or not event.data:
                continue
            try:
                message = jsontext.loads(event.data)
            except ValueError:
                logger.warning("%s sent an event that is not JSON; ignored", self.link.display)
                continue
            if self.link.deliver(message, self.request_id):
                self.answered = True  # a resumed request's stream ends with its answer
                self._close()
                return

    def _close(self) -> None:
        _abort_own(self)

    def end(self) -> None:
        self._finish(True)

    def fail(self, reason: str) -> None:
        self._finish(False)

    def _finish(self, clean: bool) -> None:
        self.ended_cleanly = clean
        if not self.done.done():
            self.done.set_result(None)


class _Status:
    """A response whose status is all that matters (its body is read and dropped)."""

    def __init__(self, done: asyncio.Future[int]):
        self.done = done
        self.connection: HttpConnection | None = None

    def head(self, status: int, headers: dict[str, str]) -> None:
        if not self.done.done():
            self.done.set_result(status)

    def body(self, chunk: bytes) -> None:
        pass

    def end(self) -> None:
        pass

    def fail(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(reason))


_ACCEPT = "application/json, text/event-stream"
_OWN_HEADERS = frozenset(
    {
        "host",
        "accept",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    }
)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _target(parts: urllib.parse.SplitResult) -> str:
    """The request target: the path and query, percent-encoded where they are not already."""
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return path + (f"?{query}" if query else "")


def _same_id(a: Any, b: Any) -> bool:
    """JSON-RPC ids match only with their type (true is not 1, "1" is not 1)."""
    return type(a) is type(b) and a == b


def _header_safe(value: str, *, visible: bool = False) -> bool:
    """Whether a value from the upstream may be sent back in a header: printable ASCII (without
    spaces when `visible`, as a session id), and short."""
    low = "!" if visible else " "
    return 0 < len(value) <= MAX_EVENT_ID and all(low <= c <= "~" for c in value)


def _position(event: Event, last_id: str | None, retry: float | None) -> tuple[str | None, float | None]:
    """Where an event stream stands after `event`: the last event id that may be sent back
    (`Last-Event-ID`), and the reconnection delay the server asked for, within `RETRY_SECONDS`."""
    if event.id and _header_safe(event.id):
        last_id = event.id
    if event.retry is not None:
        low, high = RETRY_SECONDS
        retry = min(high, max(low, event.retry / 1000))
    return last_id, retry


def _abort_own(exchange: _Post | _Stream) -> None:
    """Close the exchange's connection if it still carries that exchange (not a later one)."""
    if exchange.connection is not None and exchange.connection.exchange is exchange:
        exchange.connection.abort()


def _settle_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _ssl_context() -> Any:
    import httpx2  # only for https upstreams: the same verification as the SDK's clients

    return httpx2.create_ssl_context()
