"""Requests from a shared stdio upstream to a client (sampling) while mcpd's own requests run beside
the caller's: the real server-everything over stdio, through the supervisor's one connection."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcpctl.mcpd.supervisor.connection import Connection
from mcpctl.mcpd.supervisor.instance import HealthConfig, ServerConfig, SupervisorTuning
from mcpctl.mcpd.supervisor.runtime import ServerRuntime

pytestmark = pytest.mark.anyio

NODE_BIN = Path(__file__).resolve().parents[2] / "node_modules" / ".bin"
EVERYTHING = NODE_BIN / "mcp-server-everything"
FAST = SupervisorTuning(stop_grace_seconds=1.0, backoff_initial_seconds=0.2, backoff_max_seconds=0.5)


@asynccontextmanager
async def everything() -> AsyncIterator[Connection]:
    if not EVERYTHING.exists():
        pytest.skip(f"{EVERYTHING} is missing: run `make test` (it installs the npm test upstreams)")
    config = ServerConfig(
        name="ev",
        transport="stdio",
        command=str(EVERYTHING),
        args=("stdio",),
        env={"PATH": os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")])},
        health=HealthConfig(interval_seconds=60),
        init_seconds=20,
        call_seconds=10,
    )
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


async def test_a_probe_in_flight_does_not_make_a_caller_s_sampling_request_unattributable() -> None:
    asked: list[dict[str, Any]] = []

    async def client(message: dict[str, Any]) -> dict[str, Any]:
        if message["method"] == "roots/list":
            return {"result": {"roots": []}}
        asked.append(message)
        return {"result": {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}}

    async with everything() as connection:
        started = anyio.Event()

        async def progress(message: dict[str, Any]) -> None:
            started.set()

        async with anyio.create_task_group() as group:

            async def probe() -> None:  # mcpd's own request (a health probe's call): no relay
                await connection.request(
                    "tools/call",
                    {
                        "name": "trigger-long-running-operation",
                        "arguments": {"duration": 2, "steps": 4},
                        "_meta": {"progressToken": "p"},
                    },
                    timeout=10,
                    notify=progress,
                )

            group.start_soon(probe)
            with anyio.fail_after(10):
                await started.wait()
                answer = await connection.request(
                    "tools/call",
                    {"name": "trigger-sampling-request", "arguments": {"prompt": "hi"}},
                    timeout=10,
                    relay=client,
                )
            group.cancel_scope.cancel()
    result = answer["result"]
    assert not result.get("isError"), result
    assert [m["method"] for m in asked] == ["sampling/createMessage"]
