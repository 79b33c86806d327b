"""Slow clients (mcplocal/http_protocol.py): a request has a deadline to arrive whole, head and body,
its head a size limit, and a connection that sends nothing is idle — while an answer under way, a
request the app is working on and a WebSocket are never cut by either.

A real uvicorn on uvloop with mcpctl's protocol (deadline 1 s here, keep-alive 2 s) and real
sockets. Each hole is also shown open with uvicorn's own protocol: the connection is still there
well past both times."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.sync.client import connect as ws_connect

from mcpctl.mcplocal.http_protocol import HEAD_BYTES, HEAD_FIELDS, HttpProtocol
from tests.integration.test_keep_alive import KEEP_ALIVE, _Served, serving

DEADLINE = 1.0
LONG = DEADLINE * 3  # an answer that takes longer than the deadline


class _QuickProtocol(HttpProtocol):
    request_seconds = DEADLINE
    send_seconds = DEADLINE * 2


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/body":  # reads the whole body, then answers its length
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _answer(send, str(size).encode())
    elif path == "/slow":  # the whole request is here; the answer takes LONG
        await asyncio.sleep(LONG)
        await _answer(send, b"slow")
    elif path == "/big":  # more than the socket buffers hold
        await _answer(send, b"x" * 4_000_000)
    elif path == "/later":  # the body asked for after LONG (a 100 Continue comes then)
        await asyncio.sleep(LONG)
        body = (await receive()).get("body", b"")
        await _answer(send, body)
    elif path == "/stream":  # the head at once, the body after LONG
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"str", "more_body": True})
        await asyncio.sleep(LONG)
        await send({"type": "http.response.body", "body": b"eam"})
    else:  # answers at once, whatever the body
        await _answer(send, b"ok")


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def quick() -> Iterator[_Served]:
    with serving(_QuickProtocol, _app) as served:
        yield served


@pytest.fixture
def uvicorns_own() -> Iterator[_Served]:
    with serving(HttpToolsProtocol, _app) as served:
        yield served


def _connect(served: _Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=10)


def _closed_after(conn: socket.socket, drip: bytes = b"", every: float = 0.2, bound: float = 10.0) -> float:
    """Seconds until the server closes `conn` (sending `drip` every `every` s meanwhile; reading and
    dropping whatever the server sends); `bound` if it never does."""
    started = time.monotonic()
    conn.settimeout(every)
    while time.monotonic() - started < bound:
        try:
            if not conn.recv(4096):
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if drip:
            try:
                conn.sendall(drip)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    return bound


def _read_all(conn: socket.socket, bound: float = 10.0) -> bytes:
    """Everything the server sends until it closes (at most `bound` s)."""
    conn.settimeout(bound)
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data


SLOW_HEAD = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: a\r\n")
SLOW_BODY = (b"POST /body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc", b"x")
UNREAD_BODY = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc", b"x")
CASES = {
    "nothing sent": (b"", b""),
    "a head a line at a time": SLOW_HEAD,
    "bare CRLFs": (b"\r\n", b"\r\n"),
    "a body a byte at a time": SLOW_BODY,
    "the body left after the answer": UNREAD_BODY,
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_slow_client_is_closed(quick: _Served, case: str) -> None:
    first, drip = CASES[case]
    with _connect(quick) as conn:
        conn.sendall(first)
        took = _closed_after(conn, drip)
    bound = KEEP_ALIVE if case == "nothing sent" else DEADLINE
    assert bound * 0.8 < took < bound + 3, f"{case}: closed after {took:.1f} s"


HOLES = ["nothing sent", "a head a line at a time", "the body left after the answer"]


@pytest.mark.parametrize("case", HOLES)
def test_uvicorns_own_protocol_holds_a_slow_client(uvicorns_own: _Served, case: str) -> None:
    first, drip = CASES[case]
    with _connect(uvicorns_own) as conn:
        conn.sendall(first)
        assert _closed_after(conn, drip, bound=KEEP_ALIVE + DEADLINE + 2) >= KEEP_ALIVE + DEADLINE + 2


def _head_of(size: int) -> bytes:
    start = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    return start + b"a" * (size - len(start)) + b"\r\nConnection: close\r\n\r\n"


def test_a_head_over_64_kib_is_refused_and_one_under_is_answered(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(_head_of(HEAD_BYTES + 1024))
        assert _read_all(conn).startswith(b"HTTP/1.1 431 ")
    with _connect(quick) as conn:
        conn.sendall(_head_of(HEAD_BYTES - 1024))
        assert _read_all(conn).startswith(b"HTTP/1.1 200 ")


def test_a_header_that_never_ends_is_refused_before_it_ends(quick: _Served) -> None:
    """httptools holds an unfinished header unseen by the callbacks that count the head."""
    with _connect(quick) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 8 * HEAD_BYTES:
                conn.sendall(b"a" * 16384)
                sent += 16384
                time.sleep(0.01)
        assert sent < 8 * HEAD_BYTES
        with contextlib.suppress(ConnectionError):
            assert _read_all(conn).startswith(b"HTTP/1.1 431 ")


def test_too_many_headers_are_refused(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"a:\r\n" * (HEAD_FIELDS + 1) + b"\r\n")
        assert _read_all(conn).startswith(b"HTTP/1.1 431 ")


def test_an_oversized_pipelined_head_does_not_cut_the_answer_under_way(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + _head_of(HEAD_BYTES + 1024))
        assert _read_all(conn).endswith(b"\r\n\r\nstream")  # whole, then closed, no 431 inside


def test_a_client_that_takes_no_answers_is_let_go(quick: _Served) -> None:
    conn = _connect(quick)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        conn.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 4)
        time.sleep(0.5)
        connections = quick.server.server_state.connections
        assert len(connections) == 1
        deadline = time.monotonic() + quick_send_bound()
        while connections and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not connections, "the server still holds a client that reads nothing"
    finally:
        conn.close()


def quick_send_bound() -> float:
    return _QuickProtocol.send_seconds + KEEP_ALIVE + DEADLINE * 3 + 3


def test_a_client_waiting_for_its_100_continue_is_not_late(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(
            b"POST /later HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        conn.settimeout(LONG + 5)
        assert conn.recv(4096).startswith(b"HTTP/1.1 100 ")
        conn.sendall(b"hello")
        assert conn.recv(4096).endswith(b"\r\n\r\nhello")


def test_uvicorns_own_protocol_reads_a_head_of_any_size(uvicorns_own: _Served) -> None:
    with _connect(uvicorns_own) as conn:
        conn.sendall(_head_of(4 * 1024 * 1024))
        assert _read_all(conn).startswith(b"HTTP/1.1 200 ")


def test_a_request_in_two_parts_within_the_deadline_is_answered_and_kept_alive(quick: _Served) -> None:
    with _connect(quick) as conn:
        for _ in range(2):
            conn.sendall(b"POST /body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 6\r\n\r\nabc")
            time.sleep(DEADLINE * 0.6)
            conn.sendall(b"def")
            conn.settimeout(5)
            assert conn.recv(4096).endswith(b"\r\n\r\n6")
            time.sleep(DEADLINE * 0.6)  # more than the deadline since the first request began


def test_an_answer_under_way_finishes_when_a_pipelined_request_stalls(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHo")
        began = time.monotonic()
        data = _read_all(conn)
        assert data.endswith(b"\r\n\r\nstream"), data  # the whole answer, then closed
        assert time.monotonic() - began >= LONG * 0.9


def test_a_request_the_app_works_on_is_answered_when_a_pipelined_request_stalls(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHo")
        assert _read_all(conn).endswith(b"\r\n\r\nslow")


def test_pipelined_requests_behind_a_long_answer_are_all_answered(quick: _Served) -> None:
    with _connect(quick) as conn:
        conn.sendall(
            b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"POST /body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc"
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        data = _read_all(conn)
        assert data.count(b"HTTP/1.1 200") == 3 and data.endswith(b"\r\n\r\nok"), data


def test_a_pipelined_body_mcpd_has_not_read_yet_is_not_late(quick: _Served) -> None:
    """The POST queued behind the long answer has its head here and the rest of its body sent at
    once, but mcpd reads no more of the connection until the answer ends: not the client's delay."""
    with _connect(quick) as conn:
        conn.sendall(
            b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"POST /body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 6\r\nConnection: close\r\n\r\nabc"
        )
        time.sleep(0.2)
        conn.sendall(b"def")
        data = _read_all(conn)
        assert data.count(b"HTTP/1.1 200") == 2 and data.endswith(b"\r\n\r\n6"), data


def test_a_websocket_outlives_the_deadline_and_the_keep_alive_time(quick: _Served) -> None:
    with ws_connect(f"ws://127.0.0.1:{quick.port}/ws", open_timeout=10) as ws:
        ws.send("one")
        assert ws.recv(timeout=5) == "one"
        time.sleep(KEEP_ALIVE + DEADLINE + 0.5)
        ws.send("two")
        assert ws.recv(timeout=5) == "two"
