"""What reaches a project endpoint's clients besides answers (DESIGN §5), embedded, with the fixture
upstream and the SDK client: resource subscriptions shared by several clients (legacy
`resources/subscribe` and 2026-07-28 `subscriptions/listen`), and log lines at each session's own
`logging/setLevel`, inside and outside requests."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated

from tests.e2e.conftest import Cli, login_admin
from tests.e2e.test_lists_follow_the_project import legacy, listening
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import FIXTURE, PYTHON, instances, run, wait_running

# the handshake-era methods under test are deprecated in the SDK's client for 2026-07-28
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(
        f"ignore::{MCPDeprecationWarning.__module__}.{MCPDeprecationWarning.__name__}"
    ),
]
URI = "fixture://hello"


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "news", "--server", "fx")
    wait_running(op, "fx", 1)
    return op


def text(result: Any) -> str:
    return str(result.content[0].text)


def test_one_clients_unsubscribe_does_not_cut_off_the_others(op: Cli) -> None:
    token = mint(op, "news", "subscribers")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with legacy(op, "news", token) as (first, _), legacy(op, "news", token) as (second, heard):
            await first.subscribe_resource(URI)
            await second.subscribe_resource(URI)
            await first.unsubscribe_resource(URI)
            started = time.monotonic()
            seen["touch"] = text(await first.call_tool("fx__touch", {"uri": URI}))
            seen["updated"] = await heard.first(types.ResourceUpdatedNotification, started) - started
        # both sessions ended: the upstream is no longer subscribed on their behalf
        async with legacy(op, "news", token) as (third, _):
            seen["after"] = text(await third.call_tool("fx__touch", {"uri": URI}))
        return seen

    seen = run(scenario)
    assert seen["touch"] == "touched", "the second client's subscription was cut off upstream"
    assert seen["updated"] < 5
    assert seen["after"] == "not subscribed", "the last subscriber's end unsubscribes upstream"


def test_a_listen_streams_resource_subscription_is_delivered(op: Cli) -> None:
    token = mint(op, "news", "listener")

    async def scenario() -> tuple[str, float]:
        async with listening(op, "news", token, resource_subscriptions=[URI]) as (session, heard):
            started = time.monotonic()
            touched = text(await session.call_tool("fx__touch", {"uri": URI}))
            return touched, await heard.first(ResourceUpdated, started) - started

    touched, took = run(scenario)
    assert touched == "touched" and took < 5


def logged(heard: Any) -> list[str]:
    return [
        str(item.params.data) for _, item in heard.items if isinstance(item, types.LoggingMessageNotification)
    ]


def test_log_lines_follow_each_sessions_level(op: Cli) -> None:
    token = mint(op, "news", "quiet")

    async def scenario() -> list[str]:
        async with legacy(op, "news", token) as (quiet, heard), legacy(op, "news", token) as (loud, _):
            await quiet.set_logging_level("warning")
            await loud.set_logging_level("debug")  # the instance is shared: this must not reach the other
            for level in ("debug", "info", "error"):
                await quiet.call_tool("fx__log", {"message": f"{level} line", "level": level})
            await anyio.sleep(0.3)
            return logged(heard)

    assert run(scenario) == ["error line"]


def test_a_log_line_outside_any_request_reaches_the_projects_sessions_at_their_level(op: Cli) -> None:
    token = mint(op, "news", "later")

    async def scenario() -> list[str]:
        async with legacy(op, "news", token) as (session, heard):
            await session.set_logging_level("warning")
            await session.call_tool("fx__log_later", {"message": "later error", "level": "error"})
            await session.call_tool("fx__log_later", {"message": "later debug", "level": "debug"})
            with anyio.move_on_after(5):
                while "later error" not in logged(heard):
                    await anyio.sleep(0.1)
            await anyio.sleep(0.5)
            return logged(heard)

    assert run(scenario) == ["later error"]


def test_subscriptions_are_renewed_when_the_instance_comes_back(op: Cli) -> None:
    """A restarted upstream has forgotten who subscribed: the gateway subscribes it again."""
    token = mint(op, "news", "renewed")

    async def scenario() -> str:
        async with legacy(op, "news", token) as (session, heard):
            await session.subscribe_resource(URI)
            pid = instances(op, "fx")[0]["status"]["pid"]
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            down = await heard.first(types.ResourceListChangedNotification, killed)
            await heard.first(types.ResourceListChangedNotification, down + 0.001, timeout=30)  # back
            for _ in range(50):  # the renewal is sent right after the announcement
                touched = text(await session.call_tool("fx__touch", {"uri": URI}))
                if touched == "touched":
                    break
                await anyio.sleep(0.1)
            return touched

    assert run(scenario) == "touched"
    wait_running(op, "fx", 1)
