"""Requests from a shared stdio upstream to a client (sampling) while mcpd's own requests run beside
the caller's: the real server-everything over stdio, through the supervisor's one connection."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest

from mcpctl.mcpd.supervisor.connection import Connection
from tests.integration.npm_upstreams import connected

pytestmark = pytest.mark.anyio


def everything() -> AbstractAsyncContextManager[Connection]:
    return connected("ev", "mcp-server-everything", "stdio")


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
