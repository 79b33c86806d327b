"""The real Redis the tests use (127.0.0.1:6379, on the machine and in CI), a channel prefix per test so
parallel workers never hear each other, and a TCP proxy in front of it that a test can take away and
bring back (Redis "going away" without touching the shared server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def require_redis() -> str:
    """The Redis URL; in CI an unreachable Redis is a failure, on a laptop without one a skip."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(16)
    except OSError as exc:
        reply, error = b"", exc
    else:
        error = None
    if not reply.startswith(b"+PONG"):
        reason = f"Redis at {REDIS_HOST}:{REDIS_PORT} unreachable: {error or reply!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_URL


def unique_prefix() -> str:
    return f"mcpctl-test-{uuid.uuid4().hex[:12]}"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to Redis; `stop()` closes the listener and every forwarded
    connection (as a Redis that died would), `start()` listens again on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.frozen = False  # swallow everything, close nothing: a half-open connection

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, self)),
            asyncio.create_task(self._pump(up_reader, writer, self)),
        ]
        self._tasks.update(pumps)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
            self._tasks.discard(task)
        for w in (writer, up_writer):
            w.transport.abort()
            self._writers.discard(w)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: TcpProxy) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if not proxy.frozen:
                    writer.write(data)
                    await writer.drain()
