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
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
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
