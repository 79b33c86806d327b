"""A keep-alive HTTP/1.1 client for mcpd's `transport: http` upstreams: a pool of connections to one
origin, each an asyncio protocol whose responses are parsed by httptools (llhttp, the parser uvicorn
serves with) and handed to the caller's `Exchange` as callbacks, chunk by chunk.

Why not httpx: measured on this project's 2-core VM (8 concurrent POSTs of a tools/call to the SDK's
server, answered as SSE), httpx2 costs the caller 1.18 ms of CPU per request, aiohttp 0.44, this
0.17; mcpd's whole budget for a call is 1.2 ms (issue 16). The MCP exchange over it (sessions, SSE,
the GET stream) is streamable.py; the SDK's transports stay for legacy HTTP+SSE upstreams and for
the 2026-07-28 per-request channel (modern.py).

A connection carries one exchange at a time and goes back to the pool when its response has ended
and both sides keep it alive; one idle longer than `IDLE_SECONDS` is closed rather than reused
(servers close idle connections after a few seconds, uvicorn and Node after 5, and a request
written into a connection the server is closing is lost). No proxy support (`HTTP_PROXY` is not
read, as it was not before); TLS with httpx2's default context (the
system's trust store or `SSL_CERT_FILE`, hostnames checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

import httptools

IDLE_SECONDS = 4.0
MAX_CONNECTIONS = 100
MAX_HEAD_BYTES = 64 * 1024  # a response's status line and headers
MAX_HEADERS = 100


def _keep_alive_seconds(value: str) -> float:
    """`Keep-Alive: timeout=5, max=100` → 4.0 (a second early), else IDLE_SECONDS."""
    for part in value.split(","):
        name, _, number = part.strip().partition("=")
        if name.strip().lower() == "timeout" and number.strip().isdigit():
            return max(0.0, int(number.strip()) - 1.0)
    return IDLE_SECONDS


class Exchange(Protocol):
    """What one request's response is delivered to, in order: `head` once, then `body` for each
    chunk, then `end` (the response is complete) or `fail` (it never will be)."""

    def head(self, status: int, headers: dict[str, str]) -> None: ...

    def body(self, chunk: bytes) -> None: ...

    def end(self) -> None: ...

    def fail(self, reason: str) -> None: ...


class HttpConnection(asyncio.Protocol):
    def __init__(self, pool: Pool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.idle_since = 0.0
        self.idle_limit = IDLE_SECONDS  # lower when the server says so (`Keep-Alive: timeout=N`)
        self.closed = False
        self.paused = False  # not reading: its owner has too much not yet taken
        self._aborted = False  # closed by us: the end of a body that ends with the connection is not its end
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._head_bytes = 0
        self._head_done = False
        self._until_close = False  # a body without length or chunking: it ends with the connection
        self.last_data = time.monotonic()

    # ---- asyncio -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        if self.exchange is None:  # bytes nobody asked for: the connection is no longer usable
            self.abort()
            return
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(f"a response head larger than {MAX_HEAD_BYTES} bytes")
                self.abort()
                return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(f"bad HTTP response: {type(exc).__name__}")
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.exchange is not None:
            if self._head_done and self._until_close and exc is None and not self._aborted:
                self.on_message_complete()
            else:
                self._fail(f"connection closed: {exc}" if exc else "connection closed by the server")

    # ---- httptools -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = {}
        self._head_done = False
        if self.exchange is None:  # a second response to one request: nothing on it can be trusted
            self.abort()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= MAX_HEADERS:
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim response (100 Continue): the real one follows
            return
        self._head_done = True
        headers = self._headers
        self._until_close = (
            status not in (204, 304)
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "")
        )
        self.idle_limit = min(IDLE_SECONDS, _keep_alive_seconds(headers.get("keep-alive", "")))
        if self.exchange is not None:
            self.exchange.head(status, headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.body(body)

    def on_message_complete(self) -> None:
        if not self._head_done:
            return
        exchange, self.exchange = self.exchange, None
        if exchange is None:  # not ours (see on_message_begin)
            self.abort()
            return
        keep = not self._until_close and not self.closed and self._parser.should_keep_alive()
        exchange.end()
        if keep and self.exchange is None:
            self.pool.release(self)
        else:
            self.abort()

    # ---- the pool's side -----------------------------------------------------------------------

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def start(self, exchange: Exchange, request: bytes) -> None:
        assert self.transport is not None
        self.exchange = exchange
        self._head_done = False
        self._head_bytes = 0
        self._until_close = False
        self.last_data = time.monotonic()
        self.transport.write(request)

    def _fail(self, reason: str) -> None:
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.fail(reason)

    def abort(self) -> None:
        """Close at once (an exchange still on it fails)."""
        self.closed = True
        self._aborted = True
        self.pool.discard(self)
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Connections to one origin, `MAX_CONNECTIONS` at most; a request beyond waits for one."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: object | None,
        connect_timeout: float,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.host = host
        self.port = port
        self.ssl = ssl
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.opened = 0  # connections opened so far (for tests and metrics)
        self._idle: list[HttpConnection] = []
        self._all: set[HttpConnection] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._connecting = 0
        self._closed = False

    async def start(self, exchange: Exchange, request: bytes) -> HttpConnection:
        """Write `request` on a kept-alive connection or a new one; its response goes to `exchange`.
        Raises OSError/TimeoutError when no connection can be opened."""
        while True:
            if self._closed:
                raise ConnectionError("the pool is closed")
            connection = self._take_idle()
            if connection is not None:
                connection.start(exchange, request)
                return connection
            if len(self._all) + self._connecting < self.max_connections:
                connection = await self._connect()
                connection.start(exchange, request)
                return connection
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _take_idle(self) -> HttpConnection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.closed or connection.transport is None or connection.transport.is_closing():
                continue
            if now - connection.idle_since > connection.idle_limit:
                connection.abort()
                continue
            return connection
        return None

    async def _connect(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: HttpConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,  # type: ignore[arg-type]
                    server_hostname=self.host if self.ssl is not None else None,
                )
        finally:
            self._connecting -= 1
            self._wake()  # a failed or cancelled connect frees a place someone may wait for
        self.opened += 1
        if self._closed:
            protocol.abort()
            raise ConnectionError("the pool is closed")
        self._all.add(protocol)
        return protocol

    def release(self, connection: HttpConnection) -> None:
        if self._closed or connection.closed:
            connection.abort()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        self._wake()

    def discard(self, connection: HttpConnection) -> None:
        if connection in self._all:
            self._all.discard(connection)
            self._wake()

    def _wake(self) -> None:
        """Every waiter tries again (one woken alone could be cancelled before it runs, and the
        connection it was woken for would sit idle while the others wait)."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def busy(self) -> list[HttpConnection]:
        return [c for c in self._all if c.exchange is not None]

    def connections(self) -> list[HttpConnection]:
        return list(self._all)

    def close(self) -> None:
        self._closed = True
        for connection in list(self._all):
            connection.abort()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the pool is closed"))


def request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """A request's line and headers, each ended by CRLF, without the blank line that ends the head
    (the caller adds `content-length` and the body, or just the blank line). Header names and values
    must already be checked (`check_header`)."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    return "".join(lines).encode("latin-1")


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_header(name: str, value: str) -> None:
    """ValueError for a header that would break the request (no CR/LF smuggling, a token name)."""
    if not name or any(c not in _TOKEN for c in name):
        raise ValueError(f"invalid header name {name!r}")
    if any(c != "\t" and (c < " " or c == "\x7f") for c in value):
        raise ValueError(f"invalid value for header {name!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"header {name!r} is not latin-1") from exc
