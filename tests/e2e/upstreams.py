"""Real upstream MCP servers and an MCP client for the supervisor tests.

Upstreams: `mcp-server-time` (PyPI, in the venv), `@modelcontextprotocol/server-everything` (npm,
installed into node_modules by `make test`), and the project's own fixture server
(tests/fixtures/mcp_fixture_server.py). The client is the official SDK's, over Streamable HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import BIN, Cli, free_port
from tests.e2e.rawmcp import INITIALIZE as INITIALIZE
from tests.processes import wait_listening

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / "node_modules" / ".bin"
EVERYTHING = NODE_BIN / "mcp-server-everything"
FIXTURE = ROOT / "tests" / "fixtures" / "mcp_fixture_server.py"
PYTHON = sys.executable
T = TypeVar("T")
ACCEPT = {"Accept": "application/json, text/event-stream"}
TIME_SERVER = ("--transport", "stdio", "--command", "mcp-server-time")


def upstream_env() -> dict[str, str]:
    """Environment for an mcpd that runs upstreams: the venv and node_modules on PATH, quick probes
    and restarts so the tests see state changes in seconds."""
    return {
        "PATH": os.pathsep.join([str(BIN), str(NODE_BIN), os.environ.get("PATH", "")]),
        "MCPD_PROBE_INTERVAL_SECONDS": "1",
        "MCPD_STOP_GRACE_SECONDS": "2",
        "MCPD_RECONCILE_INTERVAL_SECONDS": "2",
    }


def require_everything() -> Path:
    """server-everything's binary; in CI its absence is a failure, elsewhere a skip."""
    if not EVERYTHING.exists():
        message = f"{EVERYTHING} is missing: run `make test` (it installs the npm test upstreams)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return EVERYTHING


@contextmanager
def everything_http(transport: str = "streamableHttp") -> Iterator[str]:
    """server-everything in streamableHttp (or legacy sse) mode on a free loopback port; yields its
    MCP URL (`…/mcp`, or `…/sse` for the legacy transport)."""
    binary = require_everything()
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    process = subprocess.Popen(
        [str(binary), transport],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, f"server-everything ({transport})")
        yield f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- the client side ----------------------------------------------------------------------------------


@asynccontextmanager
async def mcp_client(url: str, token: str) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run one async client interaction from a synchronous test."""
    return anyio.run(fn)


def proxy_url(cli: Cli, server: str, project: str | None = None) -> str:
    if project is not None:
        return f"{cli.daemon.url}/api/v1/projects/{project}/servers/{server}/mcp"
    return f"{cli.daemon.url}/api/v1/servers/{server}/mcp"


# ---- watching instances and processes -----------------------------------------------------------------


def instances(cli: Cli, server: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cli.json("get", "instances", "--server", server)["items"]
    return items


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_running(cli: Cli, server: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        items = instances(cli, server)
        running = [
            i
            for i in items
            if i["status"]["status"] == "RUNNING" and i["status"]["healthStatus"] == "healthy"
        ]
        return items if len(items) == count and len(running) == count else None

    return wait_for(f"{count} running, healthy instance(s) of {server}", check, timeout)
