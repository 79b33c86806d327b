"""The servers' HTTP connections (mcplocal/http_protocol.py): a request that arrived on an idle
keep-alive connection while the event loop was held up is served, not reset.

A real uvicorn on uvloop with mcpctl's protocol, serving a tiny ASGI app in a thread; the test holds
that loop (a blocking callback, as a starved process would) past the keep-alive time while the
client sends its second request. uvicorn's own protocol closes that connection with the request
unread — the kernel then resets it — because the timer falls due and runs before the read."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvloop

from mcpctl.mcplocal.http_protocol import HttpProtocol

KEEP_ALIVE = 2  # wide enough that a loaded machine starts the hold before the timer falls due
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Served:
    def __init__(self, protocol: Any, app: Any = _app, keep_alive: float = KEEP_ALIVE) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, http=protocol, timeout_keep_alive=keep_alive, log_config=None)
        self.server = uvicorn.Server(config)
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.holders: list[asyncio.Server] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        for holder in self.holders:
            holder.close()
            self.loop.run_until_complete(holder.wait_closed())
        self.loop.close()

    def hold(self, seconds: float) -> socket.socket:
        """Block the server's event loop for `seconds` in an I/O callback — where a starved or
        paused process is held most of the time under load: the next turn of the loop starts with
        the timers that fell due meanwhile. (A held task step would not show it: in uvloop those
        run before the loop reads its sockets.)"""
        started = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(lambda: _Holder(seconds), "127.0.0.1", 0), self.loop
        )
        self.holders.append(started.result(timeout=10))
        port = self.holders[-1].sockets[0].getsockname()[1]
        holder = socket.create_connection(("127.0.0.1", port), timeout=10)
        holder.sendall(b"x")
        return holder


class _Holder(asyncio.Protocol):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def data_received(self, data: bytes) -> None:
        time.sleep(self.seconds)


@contextlib.contextmanager
def serving(protocol: Any, app: Any = _app, keep_alive: float = KEEP_ALIVE) -> Iterator[_Served]:
    """A real uvicorn on uvloop with `protocol`, serving `app` in a thread, stopped on the way out."""
    served = _Served(protocol, app, keep_alive)
    served.thread.start()
    deadline = time.monotonic() + 10
    while not served.server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield served
    finally:
        served.server.should_exit = True
        served.thread.join(timeout=10)


@pytest.fixture
def served() -> Iterator[_Served]:
    with serving(HttpProtocol) as served:
        yield served


def _response(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"ok"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_request_that_arrived_while_the_loop_was_held_is_served_not_reset(served: _Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(REQUEST)
        assert _response(conn).startswith(b"HTTP/1.1 200")
        # the keep-alive timer is armed now; the loop is held past it, and the next request arrives
        # while it is held
        with served.hold(KEEP_ALIVE * 2.5):
            time.sleep(KEEP_ALIVE / 2)
            conn.sendall(REQUEST)
            assert _response(conn).startswith(b"HTTP/1.1 200")


def test_an_idle_connection_is_still_closed_after_the_keep_alive_time(served: _Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(REQUEST)
        assert _response(conn).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert conn.recv(1) == b""  # closed by the server
        assert KEEP_ALIVE * 0.8 < time.monotonic() - started < KEEP_ALIVE * 3
