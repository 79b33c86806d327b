"""The npm test upstreams (installed by `make test` into node_modules) run by the supervisor's own
runtime, for tests of mcpd's one shared connection to an instance (`started`: any server's)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from mcpctl.mcpd.supervisor.connection import Connection
from mcpctl.mcpd.supervisor.instance import HealthConfig, ServerConfig, SupervisorTuning
from mcpctl.mcpd.supervisor.runtime import ServerRuntime

NODE_BIN = Path(__file__).resolve().parents[2] / "node_modules" / ".bin"
FAST = SupervisorTuning(stop_grace_seconds=1.0, backoff_initial_seconds=0.2, backoff_max_seconds=0.5)


@asynccontextmanager
async def connected(name: str, command: str, *args: str) -> AsyncIterator[Connection]:
    """The connection to a running instance of `node_modules/.bin/<command> <args>` (stopped after)."""
    executable = NODE_BIN / command
    assert executable.exists(), (
        f"{executable} is missing: run `make test` (it installs the npm test upstreams)"
    )
    config = ServerConfig(
        name=name,
        transport="stdio",
        command=str(executable),
        args=args,
        env={"PATH": os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")])},
        health=HealthConfig(interval_seconds=60),
        init_seconds=20,
        call_seconds=10,
    )
    async with started(config) as connection:
        yield connection


@asynccontextmanager
async def started(config: ServerConfig) -> AsyncIterator[Connection]:
    """The connection to a running instance of `config` (stopped after)."""
    runtime = ServerRuntime(config, FAST)
    runtime.start()
    try:
        with anyio.fail_after(20):
            replica = await runtime.pick(20)
        assert replica.connection is not None
        yield replica.connection
    finally:
        with anyio.fail_after(15):
            await runtime.stop()
