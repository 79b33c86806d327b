"""`StreamableHttpLink`: a `transport: http` upstream over Streamable HTTP (2025-03-26 and later),
on mcpd's own keep-alive HTTP/1.1 pool (http1.py).

Each message is a POST; a request's answer comes as one JSON body or on the POST's own event stream,
together with whatever the upstream sends about that request first (progress, log lines, its own
requests to the client): those are received with the request's id as `related`. The upstream's
session id (from the initialize answer) and the negotiated protocol version ride on every later
request; after `notifications/initialized` a GET opens the stream for messages unrelated to any
request; closing the link DELETEs the session. Like the SDK's client transport, which this replaces
for speed (http1.py says why):
- a request answered with an HTTP error gets a JSON-RPC error: the body's own when it is one, else
  "Session terminated" for a 404 on a session, "Not Found" before one, a generic one otherwise;
  `202 Accepted` or an unexpected content type for a request is an error too;
- a same-origin 307/308 is followed; any other redirect is not, and the error names the location;
- a request's event stream that ends without the answer is resumed by a GET with `Last-Event-ID`
  when its events had ids (twice at most), else the request gets an error;
- the GET stream reconnects (twice at most in a row) and ends for good on 405;
- no HTTP connection is opened until the first message: a server that cannot be reached fails
  `initialize`, which fails the instance's start with the reason.
A connection that cannot be opened closes the link (the upstream is gone, as a stdio child that
exited); a connection lost mid-answer fails that request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from typing import Any

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
READ_IDLE_SECONDS = 300.0  # a request's stream silent this long is given up (the SDK's read timeout)
AFTER_ANSWER_SECONDS = 10.0  # a request's stream still open this long after its answer is closed
RECONNECT_ATTEMPTS = 2
RECONNECT_DELAY_SECONDS = 1.0
DELETE_SECONDS = 2.0
MAX_REDIRECTS = 3


class StreamableHttpLink:
    pid: int | None = None

    def __init__(self, url: str, headers: dict[str, str], *, connect_timeout: float = 10.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpawnError(f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise SpawnError(f"bad port in {url!r}") from exc
        for name, value in headers.items():
            try:
                check_header(name, value)
            except ValueError as exc:
                raise SpawnError(str(exc)) from exc
        self.url = url
        self._origin = (parts.scheme, parts.hostname.lower(), port)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        default_port = port == (443 if parts.scheme == "https" else 80)
        self._host_header = host if default_port else f"{host}:{port}"
        self._configured = [(k, v) for k, v in headers.items() if k.lower() not in _OWN_HEADERS]
        ssl = _ssl_context() if parts.scheme == "https" else None
        self._pool = Pool(parts.hostname, port, ssl=ssl, connect_timeout=connect_timeout)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._incoming: asyncio.Queue[Received | None] = asyncio.Queue()
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
        request_id = message.get("id") if method is not None and "id" in message else None
        is_request = method is not None and "id" in message
        if method == "initialize":
            self.protocol_version = None
            self._prefix = None
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        exchange = _Post(self, request_id if is_request else None, is_request, method == "initialize", body)
        await self._post(exchange, self._target)
        if method == "notifications/initialized":
            self._spawn(self._listen())

    async def receive(self) -> Received:
        item = await self._incoming.get()
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
        headers = [("host", self._host_header), ("accept", accept), ("user-agent", "mcpd")]
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
        request = (
            self._post_prefix(target)
            + b"content-length: %d\r\n\r\n" % len(exchange.payload)
            + exchange.payload
        )
        await self._start(exchange, request)

    async def _start(self, exchange: Any, request: bytes) -> HttpConnection | None:
        try:
            connection = await self._pool.start(exchange, request)
        except (OSError, TimeoutError, ConnectionError) as exc:
            if self._reason is None:
                self._end(f"connection failed: cannot connect to {self.url}: {_describe(exc)}")
            raise LinkClosed(self._reason or "connection closed") from exc
        if self._sweeper is None:
            self._sweeper = self._spawn(self._sweep())
        exchange.connection = connection
        return connection

    def _end(self, reason: str) -> None:
        self._reason = self._reason or reason
        self._pool.close()
        self._incoming.put_nowait(None)

    async def _delete(self) -> None:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._pool.start(
            _Status(done), _head("DELETE", self._target, self._headers(accept=_ACCEPT)) + b"\r\n"
        )
        status = await done
        if status not in (200, 202, 204, 405):
            logger.debug("DELETE of the session at %s answered %s", self.url, status)

    # ---- receiving -------------------------------------------------------------------------------

    def deliver(self, message: Any, related: Any) -> bool:
        """Queue what the upstream sent; True when it is the answer to request `related`."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            logger.warning("%s sent something that is not a JSON-RPC message; ignored", self.url)
            return False
        self._incoming.put_nowait((message, related))
        return "method" not in message and related is not None and message.get("id") == related

    def fail(self, request_id: Any, code: int, text: str) -> None:
        error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}
        self._incoming.put_nowait((error, request_id))

    def initialized(self, headers: dict[str, str], answer: Any) -> None:
        session = headers.get("mcp-session-id")
        if session is not None:
            if not session or any(not ("!" <= c <= "~") for c in session):
                logger.warning("%s sent an invalid session id; ignored", self.url)
            else:
                self.session_id = session
        result = answer.get("result") if isinstance(answer, dict) else None
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if isinstance(version, str) and version.isprintable() and len(version) < 64:
            self.protocol_version = version
        self._prefix = None

    def redirect(self, exchange: _Post, location: str) -> str | None:
        """The target to resend `exchange` to, or None (the location is not followed)."""
        url = urllib.parse.urljoin(self.url, location)
        parts = urllib.parse.urlsplit(url)
        try:
            origin = (
                parts.scheme,
                (parts.hostname or "").lower(),
                parts.port or (443 if parts.scheme == "https" else 80),
            )
        except ValueError:
            return None
        if origin != self._origin or exchange.redirects >= MAX_REDIRECTS:
            return None
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def resend(self, exchange: _Post, target: str) -> None:
        exchange.redirects += 1
        self._spawn(self._resend(exchange.again(), target))

    async def _resend(self, exchange: _Post, target: str) -> None:
        with contextlib.suppress(LinkClosed):  # the link's end fails every request waiting on it
            await self._post(exchange, target)

    def resume(self, exchange: _Post) -> None:
        self._spawn(self._resume(exchange))

    async def _resume(self, exchange: _Post) -> None:
        for _ in range(RECONNECT_ATTEMPTS):
            delay = exchange.retry_ms / 1000 if exchange.retry_ms is not None else RECONNECT_DELAY_SECONDS
            await asyncio.sleep(delay)
            stream = _Stream(self, exchange.request_id)
            headers = self._headers(accept="text/event-stream")
            headers.append(("last-event-id", exchange.last_event_id or ""))
            try:
                await self._start(stream, _head("GET", self._target, headers) + b"\r\n")
            except LinkClosed:
                return
            await stream.done
            if stream.answered:
                return
            exchange.last_event_id = stream.last_id or exchange.last_event_id
        self.fail(
            exchange.request_id,
            CONNECTION_CLOSED,
            "SSE stream ended and reconnection attempts were exhausted",
        )

    async def _listen(self) -> None:
        """The GET stream: messages unrelated to a request, for the session's life."""
        attempts, last_id, retry_ms = 0, None, None
        while attempts < RECONNECT_ATTEMPTS and self.session_id is not None:
            stream = _Stream(self, None)
            headers = self._headers(accept="text/event-stream")
            if last_id:
                headers.append(("last-event-id", last_id))
            try:
                await self._start(stream, _head("GET", self._target, headers) + b"\r\n")
            except LinkClosed:
                return
            await stream.done
            if stream.status == 405:
                return  # the server offers no GET stream
            last_id = stream.last_id or last_id
            retry_ms = stream.retry_ms if stream.retry_ms is not None else retry_ms
            attempts = 0 if stream.status == 200 and stream.ended_cleanly else attempts + 1
            await asyncio.sleep((retry_ms / 1000) if retry_ms is not None else RECONNECT_DELAY_SECONDS)

    async def _sweep(self) -> None:
        """Give up on requests whose stream has been silent for `READ_IDLE_SECONDS`."""
        while True:
            await asyncio.sleep(min(30.0, READ_IDLE_SECONDS / 4))
            now = time.monotonic()
            for connection in self._pool.busy():
                if isinstance(connection.exchange, _Post) and now - connection.last_data > READ_IDLE_SECONDS:
                    connection.abort()

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class _Post:
    """One POSTed message's response."""

    def __init__(
        self, link: StreamableHttpLink, request_id: Any, is_request: bool, initialize: bool, body: bytes
    ):
        self.link = link
        self.request_id = request_id
        self.is_request = is_request
        self.initialize = initialize
        self.payload = body
        self.redirects = 0
        self.connection: HttpConnection | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.mode = "ignore"  # json | sse | error | ignore
        self.chunks: list[bytes] = []
        self.size = 0
        self.parser: EventStreamParser | None = None
        self.answered = False
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._closer: asyncio.TimerHandle | None = None

    def again(self) -> _Post:
        post = _Post(self.link, self.request_id, self.is_request, self.initialize, self.payload)
        post.redirects = self.redirects
        return post

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers
        content_type = headers.get("content-type", "").lower()
        if not self.is_request:
            if status >= 400:
                logger.debug("%s answered a notification or response with HTTP %s", self.link.url, status)
            return
        if status in (307, 308) and "location" in headers:
            target = self.link.redirect(self, headers["location"])
            if target is not None:
                self.mode = "redirected"
                self.link.resend(self, target)
                return
        if 300 <= status < 400:
            location = headers.get("location", "")
            self._settle(
                INVALID_REQUEST,
                f"Redirect to {location} not followed; use that URL as the endpoint "
                "if it is the intended server",
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
            self._settle(INVALID_REQUEST, f"Unexpected content type: {content_type}")

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
        elif self.mode in ("json", "error"):
            self.size += len(chunk)
            if self.size > MAX_BODY_BYTES:
                self._settle(PARSE_ERROR, f"an answer larger than {MAX_BODY_BYTES} bytes")
                self.mode = "ignore"
                self._drop()
                return
            self.chunks.append(chunk)

    def _event(self, event: Event) -> None:
        if event.id:
            self.last_event_id = event.id
        if event.retry is not None:
            self.retry_ms = event.retry
        if event.event != "message" or not event.data or self.answered:
            return
        try:
            message = json.loads(event.data)
        except ValueError as exc:
            self._settle(PARSE_ERROR, f"Failed to parse SSE message: {exc}")
            return
        self._message(message)

    def _message(self, message: Any) -> None:
        answer = (
            isinstance(message, dict) and "method" not in message and message.get("id") == self.request_id
        )
        if answer and self.initialize:
            self.link.initialized(self.headers, message)
        if self.link.deliver(message, self.request_id):
            self.answered = True
            self._closer = asyncio.get_running_loop().call_later(AFTER_ANSWER_SECONDS, self._drop)

    def end(self) -> None:
        if self._closer is not None:
            self._closer.cancel()
        if not self.is_request or self.mode in ("redirected", "ignore"):
            return
        body = b"".join(self.chunks)
        if self.mode == "json":
            try:
                parsed = json.loads(body)
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
                    self.link.deliver(
                        {"jsonrpc": "2.0", "id": self.request_id, "error": parsed["error"]}, self.request_id
                    )
                    self.answered = True
                    return
        if self.status == 404:
            if self.link.session_id is None:
                self._settle(METHOD_NOT_FOUND, "Not Found")
            else:
                self._settle(INVALID_REQUEST, "Session terminated")
        else:
            self._settle(INTERNAL_ERROR, f"Server returned an error response (HTTP {self.status})")

    def fail(self, reason: str) -> None:
        if self._closer is not None:
            self._closer.cancel()
        if not self.is_request or self.answered or self.mode == "redirected":
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
        if self.mode not in ("redirected",):
            self.mode = "ignore"

    def _drop(self) -> None:
        if self.connection is not None and self.connection.exchange is self:
            self.connection.abort()


class _Stream:
    """A GET's event stream: the session's own (`request_id` None) or a request's, resumed."""

    def __init__(self, link: StreamableHttpLink, request_id: Any):
        self.link = link
        self.request_id = request_id
        self.connection: HttpConnection | None = None
        self.status: int | None = None
        self.parser = EventStreamParser(MAX_BODY_BYTES)
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self.answered = False
        self.ended_cleanly = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def head(self, status: int, headers: dict[str, str]) -> None:
        streaming = headers.get("content-type", "").lower().startswith("text/event-stream")
        self.status = 415 if status == 200 and not streaming else status

    def body(self, chunk: bytes) -> None:
        if self.status != 200:
            return
        try:
            events = self.parser.feed(chunk)
        except EventTooLarge:
            self._finish(False)
            if self.connection is not None:
                self.connection.abort()
            return
        for event in events:
            if event.id:
                self.last_id = event.id
            if event.retry is not None:
                self.retry_ms = event.retry
            if event.event != "message" or not event.data:
                continue
            try:
                message = json.loads(event.data)
            except ValueError:
                logger.warning("%s sent an event that is not JSON; ignored", self.link.url)
                continue
            if self.link.deliver(message, self.request_id):
                self.answered = True
                if self.connection is not None:  # a resumed request's stream ends with its answer
                    self.connection.abort()

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


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _ssl_context() -> Any:
    import httpx2  # only for https upstreams: the same verification as the SDK's clients

    return httpx2.create_ssl_context()
