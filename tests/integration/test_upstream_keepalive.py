"""mcpd's connections to a `transport: http` upstream are kept alive: calls reuse them although the
upstream answers each POST with an SSE stream (as the SDK's server does), and nothing is left open
once the server is stopped. The upstream is the fixture server over real HTTP behind a
TCP relay that counts the connections it accepts."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from mcpctl.mcpd.supervisor.instance import HealthConfig, ServerConfig
from tests.integration.npm_upstreams import started
from tests.processes import clean_env, free_port, wait_listening

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mcp_fixture_server.py"
CALLS = 400
CONCURRENCY = 8


@dataclass
class Relay:
    """Accepts on `port`, pipes each connection to the upstream, counts what it accepted."""

    upstream: int
    port: int = 0
    accepted: int = 0
    open: set[asyncio.Task[None]] = field(default_factory=set)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self.open.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.open.discard(task)


@contextlib.contextmanager
def fixture_over_http() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(FIXTURE), "http", "--port", str(port)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process, "the fixture server")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@asynccontextmanager
async def relayed(upstream: int) -> AsyncIterator[Relay]:
    relay = Relay(upstream)
    server = await asyncio.start_server(relay._serve, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    async with server:
        yield relay


async def test_calls_to_an_http_upstream_reuse_kept_alive_connections_and_leave_none_open() -> None:
    with fixture_over_http() as port:
        async with relayed(port) as relay:
            upstream = ServerConfig(
                name="fh",
                transport="http",
                url=f"http://127.0.0.1:{relay.port}/mcp",
                health=HealthConfig(interval_seconds=60),
            )
            async with started(upstream) as connection:

                async def echo(text: str) -> None:
                    answer = await connection.request(
                        "tools/call", {"name": "echo", "arguments": {"text": text}}, timeout=10
                    )
                    assert answer["result"]["content"][0]["text"] == text

                async def worker(name: str, calls: int) -> None:
                    for i in range(calls):
                        await echo(f"{name} {i}")

                async def wave(calls: int) -> None:
                    async with anyio.create_task_group() as group:
                        for w in range(CONCURRENCY):
                            group.start_soon(worker, f"w{w}", calls)

                with anyio.fail_after(60):
                    await wave(4)  # the pool has what concurrent calls need
                    before = relay.accepted
                    await worker("one", CALLS // 2)
                    await wave(CALLS // 2 // CONCURRENCY)
                new = relay.accepted - before
                assert new <= CALLS // 100, f"{new} new connections for {CALLS} calls"
            with anyio.fail_after(10):
                while relay.open:  # stopped: every connection to the upstream is closed
                    await anyio.sleep(0.05)
