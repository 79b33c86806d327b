"""The HTTP/1.1 connection handling of mcpd and `mcplocal serve`: uvicorn's C parser (httptools),
with keep-alive that never drops a request that has already arrived.

- **Idle connections are kept 75 s by default** (`http_keep_alive_seconds` of mcpd and mcplocal;
  uvicorn's default is 5 s): longer than the idle time of the usual proxies in front (ingress-nginx
  keeps upstream connections 60 s, AWS ALB 60 s), so the server is not the side closing a
  connection a proxy is about to reuse — a POST sent on it is lost (a 502 at the proxy), and MCP's
  calls are POSTs. Behind a proxy that keeps idle connections longer, raise it above the proxy's.
- **A request already waiting is served, not reset.** The keep-alive timer is armed when a
  response ends and cancelled when the next request's bytes are read. After the event loop was held
  up (a starved or paused process), uvloop runs the timers that fell due before it reads the
  sockets, so a connection whose next request arrived during the hold was closed with the request
  unread: the kernel answers that with a reset, and the client loses a call mcpd never saw (seen
  under the full test suite's load, and with mcpd paused by SIGSTOP; `tests/integration/
  test_keep_alive.py` holds the loop in an I/O callback). The timer now looks at the socket first
  (FIONREAD) and, when bytes are waiting, leaves the connection open for the read that follows.
- **A request's head has `HEAD_TIMEOUT_SECONDS` to arrive whole** (30 s, counted from its first
  byte), and a new connection that sends nothing is idle like a kept-alive one (closed after the
  keep-alive time). uvicorn times neither: a client that connects and sends nothing, or sends a
  head a byte at a time (slowloris), held its connection, and its descriptor, for good, and enough
  of them stop the server from accepting. Closed without an answer, as the keep-alive timer closes
  (a proxy in front sees a connection closed before any request was taken). A body is not timed
  here: a request is handed to the app once its head is whole.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_SECONDS = 30.0  # nginx's client_header_timeout is 60 s; an MCP client sends its head at once


class HttpProtocol(HttpToolsProtocol):
    head_timeout_seconds = HEAD_TIMEOUT_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # idle until its first byte, as between two requests (data_received cancels it)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_arrived()
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_late)

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self.flow.read_paused and _unread_bytes(self.transport) > 0:
            # the loop was held: the rest may be waiting unread; this turn reads it
            self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_late)
            return
        self.transport.close()

    def timeout_keep_alive_handler(self) -> None:
        waiting = not self.transport.is_closing() and not self.flow.read_paused
        if waiting and _unread_bytes(self.transport) > 0:
            # the read comes in this turn of the loop, and cancels the timer it re-arms
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            return
        super().timeout_keep_alive_handler()


def _unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel holds for this connection that nobody has read yet (0 when unknown)."""
    sock = transport.get_extra_info("socket")
    waiting = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, waiting)
    except (AttributeError, OSError, ValueError):  # no socket (any more)
        return 0
    return waiting[0]
