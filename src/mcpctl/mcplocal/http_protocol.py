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
- **A request has `REQUEST_SECONDS` to arrive whole, head and body** (60 s from its first byte),
  and a new connection that sends nothing is idle like a kept-alive one (closed after the
  keep-alive time). uvicorn times neither: a client that connected and sent nothing, or a request a
  byte at a time (slowloris), held its connection and descriptor for good, and enough of them stop
  the server from accepting. The deadline is absolute (more bytes do not extend it; nginx times a
  body per read instead, which a byte a minute defeats) and counts bytes that are not a request too
  (bare CRLFs, which the parser skips), and the rest of a body a response did not wait for. What
  is late is the client's only: when the server holds the rest unread (a pipelined request queued
  behind an answer, a body the app has not taken yet, a client waiting for its 100 Continue) the
  deadline starts again, and once more when the hold has ended (the 100 Continue may have gone out
  just before the check); when an answer is under way, or the app has its whole request, the late
  bytes are a pipelined request and the connection closes after that answer, not in it.
- **A head is at most `HEAD_BYTES` (64 KiB) and `HEAD_FIELDS` (200) headers**, over either a
  `431` (after the answer under way, if any): httptools keeps no limit, and holds a header that
  never ends in memory unseen by its callbacks, so whole reads inside one head count too.
- **Answers the client does not take for `SEND_SECONDS` (60 s) end the connection** (nginx's
  `send_timeout`): an answer waiting to be written waited for good, and so did closing, which
  sends what is buffered first; a connection closed by a timer with answers still buffered is
  aborted.
- **A request can hear its connection end without a task** (`DISCONNECTED`, an ASGI scope
  extension: a future done when the connection is lost). ASGI's own way is a task that waits in
  `receive()` for `http.disconnect`: a direct call that watched so paid a task's start and
  cancellation per call, measured at 0.015-0.02 ms of `mcplocal serve`'s CPU per call (split http,
  c=32; docs/performance.md). An app that finds no such extension (another server) watches
  `receive()` as before.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_SECONDS = 60.0  # a request, head and body, from its first byte (nginx's timeouts are 60 s)
SEND_SECONDS = 60.0  # answers the client does not take (nginx's send_timeout is 60 s)
HEAD_BYTES = 64 * 1024  # a request's line and headers, at most (nginx: 4 buffers of 8 KiB)
HEAD_FIELDS = 200  # headers in one request, at most
DISCONNECTED = "mcpctl.disconnected"  # the scope extension: a future done when the connection is lost
_HEAD_TOO_LARGE = "Request line and headers too large."
_HEAD_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_TOO_LARGE), _HEAD_TOO_LARGE.encode())
)


class HttpProtocol(HttpToolsProtocol):
    request_seconds = REQUEST_SECONDS
    send_seconds = SEND_SECONDS
    _request_timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None
    _in_request = False  # a request's first byte was parsed, its last not yet
    _request_ended = False  # a request ended in the bytes being parsed now
    _upgraded = False  # handed to the WebSocket protocol: no longer this one's to time
    _waited_for_unread = False  # the deadline was extended once for bytes the kernel held
    _held_by_server = False  # the deadline was last extended because mcpd held the rest unread
    _requests_begun = 0
    _in_head = False  # a request's first byte was parsed, the end of its head not yet
    _head_bytes = 0  # of the request being parsed: its line and headers so far (at least)
    _head_fields = 0
    _head_too_large = False
    _lost: asyncio.Future[None] | None = None  # DISCONNECTED, made with the first request

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # idle until its first byte, as between two requests (data_received cancels it)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_request_timer()
        self._stop_send_timer()
        self._unset_keepalive_if_required()  # uvicorn's own does so on a clean close only
        super().connection_lost(exc)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._request_ended = False
        within_head, begun = self._in_head, self._requests_begun
        super().data_received(data)
        if self._upgraded or self.transport.is_closing():
            return
        if within_head and self._in_head and begun == self._requests_begun:
            # all of it in one head: httptools holds an unfinished header unseen by its callbacks
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_BYTES:
                self._refuse_head()
                return
        if self._request_timer is None and (self._in_request or not self._request_ended):
            # part of a request, or bytes that are none (a bare CRLF): the deadline starts
            self._start_request_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._lost is None:
            self._lost = self.loop.create_future()
        self.scope.setdefault("extensions", {})[DISCONNECTED] = self._lost  # type: ignore[assignment]
        self._in_request = self._in_head = True
        self._requests_begun += 1
        self._head_bytes = self._head_fields = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        self._count_head(len(name) + len(value) + 4)  # and ": ", CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _count_head(self, size: int) -> None:
        """httptools keeps no limit: a head of any size was read into memory within the deadline."""
        self._head_bytes += size
        if self._head_bytes > HEAD_BYTES or self._head_fields > HEAD_FIELDS:
            self._head_too_large = True
            raise ValueError(_HEAD_TOO_LARGE)  # the parser stops; uvicorn answers with send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._head_too_large = True
        self.logger.warning(_HEAD_TOO_LARGE)
        self._stop_request_timer()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # an earlier request's answer is under way or to come: it goes out whole, then the
            # connection closes (uvicorn's own 400 would be written into it)
            cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self.transport.write(_HEAD_TOO_LARGE_RESPONSE)
        self.transport.close()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_request, self._request_ended = False, True
        self._waited_for_unread = self._held_by_server = False
        self._stop_request_timer()

    def handle_websocket_upgrade(self) -> None:
        self._upgraded = True
        self._stop_request_timer()
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_seconds, self._send_late)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_send_timer()

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_late(self) -> None:
        """The client has not taken its answers for `send_seconds`: an answer waiting to be sent
        waits for good otherwise, and so does closing (it sends what is buffered first)."""
        self._send_timer = None
        self.transport.abort()

    def _start_request_timer(self) -> None:
        self._request_timer = self.loop.call_later(self.request_seconds, self._request_late)

    def _stop_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_late(self) -> None:
        self._request_timer = None
        if self.transport.is_closing() or self._upgraded:
            return
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if self.flow.read_paused or self.pipeline or (answering and cycle.waiting_for_100_continue):
            # mcpd holds the rest unread (a request queued behind an answer, a body not taken yet, a
            # client waiting for its 100 Continue): not the client's delay
            self._held_by_server = True
            self._start_request_timer()
            return
        if self._held_by_server:
            # the hold ended since the last check (the 100 Continue went out a moment ago, say): the
            # client has a whole deadline from now, not what was left of this one
            self._held_by_server = False
            self._start_request_timer()
            return
        if not self._waited_for_unread and _unread_bytes(self.transport) > 0:
            # the loop was held: the rest may be waiting unread; once, so a flood cannot keep it
            self._waited_for_unread = True
            self._start_request_timer()
            return
        if answering and (cycle.response_started or not cycle.more_body):
            # an answer under way, or the app has its whole request: what is late is a pipelined
            # request; the connection ends after that answer, not in it
            cycle.keep_alive = False
            return
        self._close()

    def _close(self) -> None:
        """Closed now: with answers the client has not taken, aborted (closing sends them first)."""
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    def timeout_keep_alive_handler(self) -> None:
        waiting = not self.transport.is_closing() and not self.flow.read_paused
        if waiting and _unread_bytes(self.transport) > 0:
            # the read comes in this turn of the loop, and cancels the timer it re-arms
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            return
        if not self.transport.is_closing():
            self._close()


def _unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel holds for this connection that nobody has read yet (0 when unknown)."""
    sock = transport.get_extra_info("socket")
    waiting = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, waiting)
    except (AttributeError, OSError, ValueError):  # no socket (any more)
        return 0
    return waiting[0]
