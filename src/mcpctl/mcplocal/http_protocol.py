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
- **A request has `REQUEST_SECONDS` to arrive whole, head and body** (60 s from its first byte, as
  nginx's `client_header_timeout`), and a new connection that sends nothing is idle like a
  kept-alive one (closed after the keep-alive time). uvicorn times neither: a client that connected
  and sent nothing, or a request a byte at a time (slowloris), held its connection and descriptor
  for good, and enough of them stop the server from accepting. The deadline is absolute (more
  bytes do not extend it) and counts bytes that are not a request too (bare CRLFs, which the parser
  skips), and the rest of a body a response did not wait for. What is late is the client's only:
  when mcpd holds the rest unread (a pipelined request queued behind an answer, a body the app has
  not taken yet) the deadline starts again; when an answer is under way, or the app has its whole
  request, the late bytes are a pipelined request and the connection closes after that answer, not
  in it. Otherwise the connection is closed without an answer, as the keep-alive timer closes it
  (a slow body's app sees the client gone).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_SECONDS = 60.0  # nginx's client_header_timeout and client_body_timeout are 60 s
HEAD_BYTES = 64 * 1024  # a request's line and headers, at most (nginx: 4 buffers of 8 KiB)
_HEAD_TOO_LARGE = "Request line and headers too large."
_HEAD_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_TOO_LARGE), _HEAD_TOO_LARGE.encode())
)


class HttpProtocol(HttpToolsProtocol):
    request_seconds = REQUEST_SECONDS
    _request_timer: asyncio.TimerHandle | None = None
    _in_request = False  # a request's first byte was parsed, its last not yet
    _request_ended = False  # a request ended in the bytes being parsed now
    _upgraded = False  # handed to the WebSocket protocol: no longer this one's to time
    _waited_for_unread = False  # the deadline was extended once for bytes the kernel held
    _head_bytes = 0  # of the request being parsed: its line and headers so far
    _head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # idle until its first byte, as between two requests (data_received cancels it)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_request_timer()
        self._unset_keepalive_if_required()  # uvicorn's own does so on a clean close only
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._request_ended = False
        super().data_received(data)
        if self._request_timer is not None or self._upgraded or self.transport.is_closing():
            return
        if self._in_request or not self._request_ended:
            # part of a request, or bytes that are none (a bare CRLF): the deadline starts
            self._request_timer = self.loop.call_later(self.request_seconds, self._request_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        """httptools keeps no limit: a head of any size was read into memory within the deadline."""
        self._head_bytes += size
        if self._head_bytes > HEAD_BYTES:
            self._head_too_large = True
            raise ValueError(_HEAD_TOO_LARGE)  # the parser stops; uvicorn answers with send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self.logger.warning(_HEAD_TOO_LARGE)
        self.transport.write(_HEAD_TOO_LARGE_RESPONSE)
        self.transport.close()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_request, self._request_ended = False, True
        self._waited_for_unread = False
        self._stop_request_timer()

    def handle_websocket_upgrade(self) -> None:
        self._upgraded = True
        self._stop_request_timer()
        super().handle_websocket_upgrade()

    def _stop_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_late(self) -> None:
        self._request_timer = None
        if self.transport.is_closing() or self._upgraded:
            return
        if self.flow.read_paused or self.pipeline:
            # mcpd holds the rest unread (a request queued behind an answer, a body not taken yet)
            self._request_timer = self.loop.call_later(self.request_seconds, self._request_late)
            return
        if not self._waited_for_unread and _unread_bytes(self.transport) > 0:
            # the loop was held: the rest may be waiting unread; once, so a flood cannot keep it
            self._waited_for_unread = True
            self._request_timer = self.loop.call_later(self.request_seconds, self._request_late)
            return
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_complete
            and (cycle.response_started or not cycle.more_body)
        ):
            # an answer under way, or the app has its whole request: what is late is a pipelined
            # request; the connection ends after that answer, not in it
            cycle.keep_alive = False
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
