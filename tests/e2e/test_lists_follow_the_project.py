"""DESIGN §5 "Lists follow the project", with real upstreams and the SDK client in both eras, in the
embedded endpoint and through `mcplocal serve` (split mode; `mcplocal stdio` too for a project
change): a server added to or removed from the project, an instance going down or coming back, and a
2026 upstream's own list change reach open legacy sessions as list_changed and 2026-07-28
`subscriptions/listen` streams as events within a second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ToolsListChanged

from tests.e2e.conftest import Cli, Mcpd, free_port, login_admin
from tests.e2e.test_mcplocal_split import MCPLOCAL, mcplocal_serve
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import FIXTURE, PYTHON, TIME_SERVER, instances, run, wait_running
from tests.processes import wait_listening

pytestmark = pytest.mark.e2e
# a killed instance stays down a few seconds, so the test sees it gone before it is back
MCPD_ENV = {"MCPD_BACKOFF_INITIAL_SECONDS": "4"}
WITHIN = 1.0  # DESIGN §5: within a second


@pytest.fixture(scope="module")
def modern_upstream() -> Iterator[str]:
    """The fixture (conformance surface) over Streamable HTTP: it speaks 2026-07-28, so a 2026
    caller's requests pass through as its own, and it announces list changes to listen streams."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, str(FIXTURE), "http", "--port", str(port), "--conformance"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, "the fixture over http")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()  # uvicorn waits for mcpd's listen stream to end: not for long
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli], modern_upstream: str) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "server", "tm", *TIME_SERVER)
    op.ok("create", "server", "modern", "--transport", "http", "--url", modern_upstream)
    wait_running(op, "fx", 1)
    wait_running(op, "tm", 1)
    return op


class Heard:
    """Notifications (or listen events) one client received, each with the time it arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self._changed = anyio.Event()

    def add(self, item: Any) -> None:
        self.items.append((time.monotonic(), item))
        self._changed.set()
        self._changed = anyio.Event()

    async def first(self, kind: type, since: float, timeout: float = 10.0) -> float:
        """When the first `kind` heard at or after `since` arrived (waits for it)."""
        with anyio.fail_after(timeout):
            while True:
                for at, item in self.items:
                    if at >= since and isinstance(item, kind):
                        return at
                await self._changed.wait()


@pytest.fixture(scope="module")
def bases(op: Cli, daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Where each mode's project endpoints live: mcpd itself, and a `mcplocal serve` in front of it."""
    with mcplocal_serve(daemon, tmp_path_factory.mktemp("serve")) as serve:
        yield {"embedded": op.daemon.url, "serve": serve}


def url(base: str, project: str) -> str:
    return f"{base}/projects/{project}/mcp"


@asynccontextmanager
async def legacy(
    op: Cli, project: str, token: str, base: str | None = None
) -> AsyncIterator[tuple[Client, Heard]]:
    heard = Heard()

    async def on_message(message: Any) -> None:
        if not isinstance(message, Exception):
            heard.add(message)

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(
            streamable_http_client(url(base or op.daemon.url, project), http_client=http),  # type: ignore[arg-type]
            mode="legacy",
            message_handler=on_message,
        ) as session,
    ):
        await session.list_tools()  # the GET stream is open and the project known
        yield session, heard


@asynccontextmanager
async def listening(
    op: Cli, project: str, token: str, base: str | None = None, **wanted: Any
) -> AsyncIterator[tuple[Client, Heard]]:
    """A 2026-07-28 client with a `subscriptions/listen` stream whose events land in `Heard`."""
    heard = Heard()
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(
            streamable_http_client(url(base or op.daemon.url, project), http_client=http),  # type: ignore[arg-type]
            mode="2026-07-28",
        ) as session,
        session.listen(**wanted) as subscription,
        anyio.create_task_group() as group,
    ):

        async def drain() -> None:
            async for event in subscription:
                heard.add(event)

        group.start_soon(drain)
        yield session, heard
        group.cancel_scope.cancel()


def tool_names(result: Any) -> set[str]:
    return {tool.name for tool in result.tools}


async def cli(op: Cli, *args: str) -> float:
    """Run the CLI off the event loop; the time it returned."""
    await anyio.to_thread.run_sync(lambda: op.ok(*args))
    return time.monotonic()


@pytest.mark.parametrize("mode", ["embedded", "serve"])
def test_adding_and_removing_a_server_reaches_both_eras_within_a_second(
    op: Cli, bases: dict[str, str], mode: str
) -> None:
    project = f"grow-{mode}"
    op.ok("create", "project", project, "--server", "fx")
    token = mint(op, project, "grower")
    base = bases[mode]

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with (
            legacy(op, project, token, base) as (old, old_heard),
            listening(op, project, token, base, tools_list_changed=True) as (new, new_heard),
        ):
            seen["before"] = tool_names(await old.list_tools())
            for step, servers in (("add", "servers=[fx, tm]"), ("remove", "servers=[tm]")):
                started = time.monotonic()
                done = await cli(op, "patch", "project", project, servers)
                legacy_at = await old_heard.first(types.ToolListChangedNotification, started)
                listen_at = await new_heard.first(ToolsListChanged, started)
                seen[step] = (legacy_at - done, listen_at - done)
                seen[f"after {step}"] = tool_names(await old.list_tools())
                seen[f"2026 after {step}"] = tool_names(await new.list_tools())
        return seen

    seen = run(scenario)
    assert "fx__echo" in seen["before"] and not any(n.startswith("tm__") for n in seen["before"])
    for step in ("add", "remove"):
        legacy_s, listen_s = seen[step]
        assert legacy_s < WITHIN and listen_s < WITHIN, f"{step}: {legacy_s:.2f}s / {listen_s:.2f}s"
    assert {"fx__echo", "tm__get_current_time"} <= seen["after add"]
    assert "tm__get_current_time" in seen["2026 after add"]
    assert "tm__get_current_time" in seen["after remove"]
    assert not any(n.startswith("fx__") for n in seen["after remove"] | seen["2026 after remove"])


@pytest.mark.parametrize("mode", ["embedded", "serve"])
def test_an_instance_going_down_and_coming_back_is_announced_and_listed(
    op: Cli, bases: dict[str, str], mode: str
) -> None:
    project = f"flaky-{mode}"
    op.ok("create", "project", project, "--server", "fx", "--server", "tm")
    token = mint(op, project, "flaky")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with legacy(op, project, token, bases[mode]) as (session, heard):
            seen["before"] = tool_names(await session.list_tools())
            pid = instances(op, "fx")[0]["status"]["pid"]
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            seen["down after"] = await heard.first(types.ToolListChangedNotification, killed) - killed
            seen["while down"] = tool_names(await session.list_tools())
            await heard.first(types.ToolListChangedNotification, time.monotonic(), timeout=30)
            seen["when back"] = tool_names(await session.list_tools())
        return seen

    seen = run(scenario)
    assert "fx__echo" in seen["before"]
    assert seen["down after"] < WITHIN
    assert "tm__get_current_time" in seen["while down"]
    assert not any(n.startswith("fx__") for n in seen["while down"]), (
        "a killed server's tools are not listed (not kept for the 60 s discovery cache)"
    )
    assert "fx__echo" in seen["when back"]
    wait_running(op, "fx", 1)


@pytest.mark.parametrize("mode", ["embedded", "serve"])
def test_a_2026_upstreams_list_change_reaches_listen_streams(
    op: Cli, bases: dict[str, str], mode: str
) -> None:
    project = f"modern-{mode}"
    op.ok("create", "project", project, "--server", "modern")
    token = mint(op, project, "modern")

    async def scenario() -> tuple[set[str], float, set[str]]:
        async with listening(op, project, token, bases[mode], tools_list_changed=True) as (session, heard):
            before = tool_names(await session.list_tools())
            # a pass-through (mcpd learns the server speaks 2026 and listens to it)
            await session.call_tool("modern__test_simple_text", {})
            await anyio.sleep(0.5)  # mcpd's own listen stream to the upstream is acknowledged
            called = time.monotonic()
            await session.call_tool("modern__test_trigger_tool_change", {})
            took = await heard.first(ToolsListChanged, called) - called
            after = tool_names(await session.list_tools())
        return before, took, after

    before, took, after = run(scenario)
    assert "modern__test_trigger_tool_change" in before
    assert took < WITHIN
    # the trigger adds `test_dynamic_tool`, or removes it when an earlier case added it
    assert ("modern__test_dynamic_tool" in after) != ("modern__test_dynamic_tool" in before)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_adding_a_server_reaches_a_mcplocal_stdio_client_within_a_second(
    op: Cli, daemon: Mcpd, mode: str
) -> None:
    project = f"grow-stdio-{mode[:4]}"
    op.ok("create", "project", project, "--server", "fx")
    token = mint(op, project, "grower")
    params = StdioServerParameters(
        command=MCPLOCAL,
        args=["stdio", "--project", project, "--mcpd-url", daemon.url],
        env={"MCPCTL_TOKEN": token, "PATH": os.environ["PATH"]},
    )

    async def scenario() -> tuple[float, set[str]]:
        heard = Heard()

        async def on_message(message: Any) -> None:
            if not isinstance(message, Exception):
                heard.add(message)

        async with Client(
            stdio_client(params, errlog=sys.stderr),
            mode=mode,
            message_handler=on_message,  # type: ignore[arg-type]
        ) as session:
            await session.list_tools()
            if mode == "legacy":
                started = time.monotonic()
                done = await cli(op, "patch", "project", project, "servers=[fx, tm]")
                took = await heard.first(types.ToolListChangedNotification, started) - done
                return took, tool_names(await session.list_tools())
            async with (
                session.listen(tools_list_changed=True) as subscription,
                anyio.create_task_group() as group,
            ):

                async def drain() -> None:
                    async for event in subscription:
                        heard.add(event)

                group.start_soon(drain)
                await anyio.sleep(0.3)  # the stream is open
                started = time.monotonic()
                done = await cli(op, "patch", "project", project, "servers=[fx, tm]")
                took = await heard.first(ToolsListChanged, started) - done
                group.cancel_scope.cancel()
            return took, tool_names(await session.list_tools())

    took, after = run(scenario)
    assert took < WITHIN, f"{took:.2f}s"
    assert "tm__get_current_time" in after
