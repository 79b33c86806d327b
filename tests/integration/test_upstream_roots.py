"""Roots through a shared upstream instance: the real server-filesystem, started without directories,
reached by several callers at once through the supervisor's one connection (each caller's roots come
from its own relay, as the endpoint's relay asks that caller's client). Each caller must reach its
own directories and only those, whatever runs beside it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcpctl.mcpd.supervisor.connection import Connection
from tests.integration.npm_upstreams import connected

pytestmark = pytest.mark.anyio


class Client:
    """One caller's side of the relay: answers `roots/list` with its current roots."""

    def __init__(self, *directories: Path):
        self.directories = list(directories)
        self.asked = 0

    async def relay(self, message: dict[str, Any]) -> dict[str, Any]:
        assert message["method"] == "roots/list"
        self.asked += 1
        return {"result": {"roots": [{"uri": d.as_uri(), "name": d.name} for d in self.directories]}}


@asynccontextmanager
async def filesystem() -> AsyncIterator[Connection]:
    async with connected("fs", "mcp-server-filesystem") as connection:  # no directories: roots
        # it reads roots right after `initialized` (answered: none, no caller yet); a call racing
        # that first read would race it directly too
        with anyio.fail_after(10):
            while not connection.roots.aware:
                await anyio.sleep(0.02)
        yield connection


async def call(connection: Connection, client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    answer = await connection.request(
        "tools/call", {"name": tool, "arguments": arguments}, timeout=10, notify=None, relay=client.relay
    )
    result: dict[str, Any] = answer["result"]
    return result


async def allowed(connection: Connection, client: Client) -> str:
    result = await call(connection, client, "list_allowed_directories")
    assert not result.get("isError"), result
    text: str = result["content"][0]["text"]
    return text


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    made = []
    for name in ("a", "b", "c"):
        directory = (tmp_path / name).resolve()
        directory.mkdir()
        (directory / "note.txt").write_text(f"in {name}")
        made.append(directory)
    return made


async def test_a_caller_s_roots_reach_a_filesystem_server_started_without_directories(
    dirs: list[Path],
) -> None:
    a = Client(dirs[0])
    async with filesystem() as connection:
        read = await call(connection, a, "read_text_file", path=str(dirs[0] / "note.txt"))
        assert not read.get("isError") and read["content"][0]["text"] == "in a"
        outside = await call(connection, a, "read_text_file", path=str(dirs[1] / "note.txt"))
        assert outside.get("isError")


async def test_concurrent_callers_each_see_only_their_own_roots(dirs: list[Path]) -> None:
    clients = [Client(d) for d in dirs]
    seen: list[tuple[int, str]] = []
    async with filesystem() as connection:

        async def one(index: int) -> None:
            client = clients[index % len(clients)]
            read = await call(
                connection, client, "read_text_file", path=str(client.directories[0] / "note.txt")
            )
            listed = await allowed(connection, client)
            seen.append((index, json.dumps([read.get("isError", False), read["content"][0]["text"], listed])))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for index in range(12):
                    group.start_soon(one, index)
    assert len(seen) == 12
    for index, text in seen:
        directory = dirs[index % len(dirs)]
        assert json.loads(text) == [False, f"in {directory.name}", f"Allowed directories:\n{directory}"]


async def test_a_change_of_a_caller_s_roots_reaches_the_upstream_with_its_next_request(
    dirs: list[Path],
) -> None:
    client = Client(dirs[0])
    async with filesystem() as connection:
        assert str(dirs[0]) in await allowed(connection, client)
        client.directories = [dirs[1], dirs[2]]  # the client's roots list_changed
        assert await allowed(connection, client) == f"Allowed directories:\n{dirs[1]}\n{dirs[2]}"
        assert client.asked == 2
