"""The `gate` proxy model through the real endpoint (DESIGN §10), with real upstreams and the SDK
client, in every mode (embedded mcpd, `mcplocal serve`, `mcplocal stdio`) and both eras:
a 2025-11-25 session lists only the meta-tools until begin_session (or a real tool call) reveals the
rest with list_changed; a 2026-07-28 caller completes a task through begin_session → call_tool while
its tools/list stays fixed; the project's prompts that fit the task come with it; a token never
learns of, ranks or calls a tool outside its reach."""

from __future__ import annotations

import os
import sys
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
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.test_lists_follow_the_project import Heard
from tests.e2e.test_mcplocal_split import MCPLOCAL, mcplocal_serve
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import FIXTURE, PYTHON, TIME_SERVER, run, wait_running

pytestmark = pytest.mark.e2e

GATE_SURFACE = {"begin_session", "find_tools", "call_tool"}
MODES = ["embedded", "serve", "stdio"]
ERAS = ["legacy", "2026-07-28"]
PROMPTS = """\
kind: Prompt
metadata: {name: time-zones, project: gated}
spec:
  text: "Always answer times in the user's own time zone, and name the zone."
  priority: 5
  tags: [time, timezone]
---
kind: Prompt
metadata: {name: house-rules, project: gated}
spec:
  text: "Never delete anything without asking."
  priority: 9
  tags: [rules]
---
kind: Prompt
metadata: {name: git-style, project: gated}
spec:
  text: "Commit messages say why, in the imperative."
  priority: 5
  tags: [git, commit]
"""


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "server", "tm", *TIME_SERVER)
    op.ok("create", "project", "gated", "--server", "fx", "--server", "tm", "--proxy-model", "gate")
    op.ok("apply", "-f", "-", input=PROMPTS)
    wait_running(op, "fx", 1)
    wait_running(op, "tm", 1)
    return op


@pytest.fixture(scope="module")
def serve_base(op: Cli, daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mcplocal_serve(daemon, tmp_path_factory.mktemp("serve")) as base:
        yield base


@asynccontextmanager
async def session(
    mode: str, era: str, token: str, daemon: Mcpd, serve_base: str
) -> AsyncIterator[tuple[Client, Heard]]:
    """An SDK client of project `gated` in `mode` and `era`; what it hears lands in Heard."""
    heard = Heard()

    async def on_message(message: Any) -> None:
        if not isinstance(message, Exception):
            heard.add(message)

    if mode == "stdio":
        params = StdioServerParameters(
            command=MCPLOCAL,
            args=["stdio", "--project", "gated", "--mcpd-url", daemon.url],
            env={"MCPCTL_TOKEN": token, "PATH": os.environ["PATH"]},
        )
        async with Client(stdio_client(params, errlog=sys.stderr), mode=era, message_handler=on_message) as c:  # type: ignore[arg-type]
            yield c, heard
        return
    base = daemon.url if mode == "embedded" else serve_base
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(
            streamable_http_client(f"{base}/projects/gated/mcp", http_client=http),  # type: ignore[arg-type]
            mode=era,
            message_handler=on_message,
        ) as c,
    ):
        yield c, heard


def names(result: Any) -> set[str]:
    return {tool.name for tool in result.tools}


def text_of(result: Any) -> str:
    return "\n".join(item.text for item in result.content if isinstance(item, types.TextContent))


@pytest.mark.parametrize("mode", MODES)
def test_a_legacy_session_sees_the_meta_tools_until_begin_session_reveals_the_rest(
    op: Cli, daemon: Mcpd, serve_base: str, mode: str
) -> None:
    token = mint(op, "gated", f"legacy-begin-{mode}")

    async def scenario() -> dict[str, Any]:
        async with session(mode, "legacy", token, daemon, serve_base) as (client, heard):
            seen: dict[str, Any] = {"first": names(await client.list_tools())}
            started = anyio.current_time()
            begun = await client.call_tool("begin_session", {"task": "what time is it in Tokyo right now?"})
            await heard.first(types.ToolListChangedNotification, 0)
            seen["begun"], seen["at"] = begun, started
            seen["after"] = names(await client.list_tools())
            prompts = await client.list_prompts()
            seen["prompts"] = {p.name for p in prompts.prompts}
            seen["prompt"] = await client.get_prompt("house-rules")
            return seen

    seen = run(scenario)
    assert seen["first"] == GATE_SURFACE, "a gated legacy session first lists only the meta-tools"
    structured = seen["begun"].structured_content
    assert "tm__get_current_time" in [t["name"] for t in structured["tools"][:2]], structured["tools"][:3]
    delivered = [p["name"] for p in structured["prompts"]]
    assert "time-zones" in delivered and "house-rules" in delivered and "git-style" not in delivered
    assert "Always answer times" in text_of(seen["begun"])
    assert {"fx__echo", "tm__get_current_time"} | GATE_SURFACE <= seen["after"]
    assert {"time-zones", "house-rules", "git-style", "fx__greet"} <= seen["prompts"]
    assert seen["prompt"].messages[0].content.text == "Never delete anything without asking."


@pytest.mark.parametrize("mode", MODES)
def test_a_real_tool_call_also_reveals_the_tools(op: Cli, daemon: Mcpd, serve_base: str, mode: str) -> None:
    token = mint(op, "gated", f"legacy-call-{mode}")

    async def scenario() -> tuple[set[str], str, set[str]]:
        async with session(mode, "legacy", token, daemon, serve_base) as (client, heard):
            first = names(await client.list_tools())
            echoed = await client.call_tool("fx__echo", {"text": "straight in"})
            await heard.first(types.ToolListChangedNotification, 0)
            return first, text_of(echoed), names(await client.list_tools())

    first, echoed, after = run(scenario)
    assert first == GATE_SURFACE
    assert echoed == "straight in"
    assert "fx__echo" in after


@pytest.mark.parametrize("mode", MODES)
def test_a_2026_caller_completes_a_task_through_begin_session_and_call_tool(
    op: Cli, daemon: Mcpd, serve_base: str, mode: str
) -> None:
    token = mint(op, "gated", f"modern-{mode}")

    async def scenario() -> dict[str, Any]:
        async with session(mode, "2026-07-28", token, daemon, serve_base) as (client, _):
            seen: dict[str, Any] = {"first": names(await client.list_tools())}
            seen["begun"] = await client.call_tool(
                "begin_session", {"task": "tell me the current time in UTC"}
            )
            ranked = seen["begun"].structured_content["tools"]
            seen["ranked"] = [t["name"] for t in ranked]
            chosen = next(t for t in ranked if t["name"] == "tm__get_current_time")
            seen["chosen"] = chosen
            seen["called"] = await client.call_tool(
                "call_tool", {"name": chosen["name"], "arguments": {"timezone": "UTC"}}
            )
            seen["found"] = await client.call_tool("find_tools", {"query": "echo some text back"})
            seen["after"] = names(await client.list_tools())
            return seen

    seen = run(scenario)
    assert seen["first"] == GATE_SURFACE == seen["after"], "the 2026 surface is fixed"
    assert "tm__get_current_time" in seen["ranked"][:2], seen["ranked"]
    assert seen["chosen"]["inputSchema"]["properties"]["timezone"], "2026 callers get the schemas"
    assert not seen["called"].is_error and '"timezone": "UTC"' in text_of(seen["called"])
    assert seen["found"].structured_content["tools"][0]["name"] == "fx__echo"


@pytest.mark.parametrize("era", ERAS)
def test_the_gate_never_shows_or_calls_a_tool_outside_the_tokens_reach(
    op: Cli, daemon: Mcpd, serve_base: str, era: str
) -> None:
    token = mint(op, "gated", f"fx-only-{era[:4]}", "--bind", "role:run,resource:servers,name:fx")

    async def scenario() -> dict[str, Any]:
        async with session("serve", era, token, daemon, serve_base) as (client, _):
            begun = await client.call_tool("begin_session", {"task": "what time is it in Tokyo?"})
            found = await client.call_tool("find_tools", {"query": "current time timezone", "limit": 50})
            try:
                called: Any = await client.call_tool(
                    "call_tool", {"name": "tm__get_current_time", "arguments": {"timezone": "UTC"}}
                )
            except MCPError as exc:
                called = exc
            return {
                "begun": begun,
                "found": found,
                "called": called,
                "listed": names(await client.list_tools()),
            }

    seen = run(scenario)
    for key in ("begun", "found"):
        ranked = [t["name"] for t in seen[key].structured_content["tools"]]
        assert ranked and not any(n.startswith("tm__") for n in ranked), ranked
        assert "tm__" not in text_of(seen[key])
    assert not any(n.startswith("tm__") for n in seen["listed"])
    assert isinstance(seen["called"], MCPError) and "Unknown tool" in seen["called"].message
