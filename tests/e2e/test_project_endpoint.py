"""The project endpoint `/projects/{p}/mcp` of the embedded all-in-one mcpd, driven by the official
SDK client in both protocol eras, with McpTokens minted by the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.upstreams import (
    ACCEPT,
    FIXTURE,
    INITIALIZE,
    PYTHON,
    TIME_SERVER,
    run,
    wait_for,
    wait_running,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "time", *TIME_SERVER)
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "p1", "--server", "time", "--server", "fx")
    op.ok("create", "project", "p2", "--server", "fx")
    wait_running(op, "time", 1)
    wait_running(op, "fx", 1)
    return op


def endpoint(op: Cli, project: str) -> str:
    return f"{op.daemon.url}/projects/{project}/mcp"


def mint(op: Cli, project: str, name: str, *extra: str) -> str:
    token: str = op.json("create", "mcptoken", name, "-p", project, *extra)["token"]
    return token


@asynccontextmanager
async def client(url: str, token: str, mode: str = "legacy") -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as session,  # type: ignore[arg-type]
    ):
        yield session


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_both_eras_list_and_call_through_one_endpoint(op: Cli, mode: str) -> None:
    token = mint(op, "p1", f"eras-{mode.replace('.', '-')}")

    async def scenario() -> dict[str, Any]:
        async with client(endpoint(op, "p1"), token, mode) as session:
            tools = [t.name for t in (await session.list_tools()).tools]
            now = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
            echo = await session.call_tool("fx__echo", {"text": "hi"})
            with pytest.raises(MCPError) as unknown:
                await session.call_tool("nope__echo", {})
            return {"tools": tools, "now": now, "echo": echo, "unknown": unknown.value}

    seen = run(scenario)
    assert "time__get_current_time" in seen["tools"] and "fx__echo" in seen["tools"]
    assert seen["tools"].index("time__get_current_time") < seen["tools"].index("fx__echo")  # project order
    assert not seen["now"].is_error and "UTC" in seen["now"].content[0].text
    assert seen["echo"].content[0].text == "hi"
    assert "Unknown tool" in str(seen["unknown"])


def test_auth_refusals(op: Cli) -> None:
    token = mint(op, "p1", "auth")
    other = mint(op, "p2", "auth-other")
    url = endpoint(op, "p1")
    headers = {**ACCEPT, "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as http:
        missing = http.post(url, json=INITIALIZE, headers=headers)
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["error"]["code"] == "unauthenticated"
        assert missing.json()["requestId"] == missing.headers["x-request-id"]  # the one error shape
        for bad in ("mcpctl_pat_" + "A" * 49, "garbage"):
            answer = http.post(url, json=INITIALIZE, headers={**headers, "Authorization": f"Bearer {bad}"})
            assert answer.status_code == 401, bad
            assert answer.headers["www-authenticate"].startswith("Bearer")
        basic = http.post(url, json=INITIALIZE, headers={**headers, "Authorization": "Basic dTpw"})
        assert basic.status_code == 401 and basic.headers["www-authenticate"].startswith("Bearer")
        foreign = http.post(url, json=INITIALIZE, headers={**headers, "Authorization": f"Bearer {other}"})
        assert foreign.status_code == 403
        in_query = http.post(f"{url}?access_token={token}", json=INITIALIZE, headers=headers)
        assert in_query.status_code == 400 and token not in in_query.text
        ok = http.post(url, json=INITIALIZE, headers={**headers, "Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text
        session = ok.headers["mcp-session-id"]
        # a session belongs to the token that opened it
        stolen = http.post(
            url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={
                **headers,
                "Authorization": f"Bearer {mint(op, 'p1', 'thief')}",
                "Mcp-Session-Id": session,
            },
        )
        assert stolen.status_code == 404
        op.ok("revoke", "mcptoken", "auth", "-p", "p1")
        revoked = http.post(url, json=INITIALIZE, headers={**headers, "Authorization": f"Bearer {token}"})
        assert revoked.status_code == 401
        assert "revoked" in revoked.headers["www-authenticate"]


def test_token_scoping_and_audit_of_the_embedded_endpoint(op: Cli) -> None:
    """A token with `run` bindings on servers reaches only those servers: the others are absent from
    lists and unknown to calls. Every call becomes an AuditEvent with the token and the session."""
    scoped = mint(op, "p1", "time-only", "--bind", "role:run,resource:servers,name:time")

    async def scenario() -> tuple[list[str], Any, Any]:
        async with client(endpoint(op, "p1"), scoped) as session:
            tools = [t.name for t in (await session.list_tools()).tools]
            now = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
            with pytest.raises(MCPError) as hidden:
                await session.call_tool("fx__echo", {"text": "no"})
            return tools, now, hidden.value

    tools, now, hidden = run(scenario)
    assert tools and all(name.startswith("time__") for name in tools)
    assert not now.is_error
    assert "Unknown tool" in str(hidden)

    def audited() -> list[dict[str, Any]] | None:
        items = op.json("get", "auditevents", "-p", "p1", "--token", "time-only")["items"]
        calls = [e["spec"] for e in items if e["spec"]["kind"] == "tool_call"]
        return calls if len(calls) >= 2 else None

    calls = wait_for("the audit events", audited, timeout=10)
    by_target = {e["target"]: e for e in calls}  # the upstream's name; as asked when it resolved to none
    assert by_target["get_current_time"]["outcome"] == "ok"
    assert by_target["get_current_time"]["server"] == "time"
    assert by_target["fx__echo"]["outcome"] == "denied"
    assert all(e["sessionId"] and e["user"] == "admin@mcpctl.local" for e in calls)


def test_sigterm_with_open_sessions_is_quick(op: Cli, daemon: Mcpd) -> None:
    """Open legacy sessions (each with its GET stream) must not hold mcpd's shutdown."""
    token = mint(op, "p1", "shutdown")
    url = endpoint(op, "p1")
    with httpx.Client(timeout=30) as http:
        headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
        opened = http.post(url, json=INITIALIZE, headers=headers)
        sid = opened.headers["mcp-session-id"]
        http.post(
            url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={**headers, "Mcp-Session-Id": sid},
        )
        with http.stream("GET", url, headers={**headers, "Mcp-Session-Id": sid}) as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            daemon.stop()
            stopped = time.monotonic() - started
    daemon.start()
    assert stopped < 5, f"mcpd took {stopped:.1f}s to stop with an open MCP stream"


def test_upstream_list_changed_reaches_sessions_and_refreshes_the_cached_list(op: Cli) -> None:
    """An upstream's tools/list_changed invalidates its cached tools at once (not after the 60 s TTL)
    and is passed on to the project's open sessions."""
    conformance = ("--arg", str(FIXTURE), "--arg", "stdio", "--arg", "--conformance")
    op.ok("create", "server", "dyn", "--transport", "stdio", "--command", PYTHON, *conformance)
    op.ok("create", "project", "p3", "--server", "dyn")
    wait_running(op, "dyn", 1)
    token = mint(op, "p3", "list-changed")

    async def scenario() -> tuple[set[str], set[str]]:
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
            Client(streamable_http_client(endpoint(op, "p3"), http_client=http), mode="legacy",
                   message_handler=on_message) as session,  # type: ignore[arg-type]
        ):  # fmt: skip
            before = {tool.name for tool in (await session.list_tools()).tools}
            await session.call_tool("dyn__test_trigger_tool_change", {})
            with anyio.fail_after(10):
                await changed.wait()
            after = {tool.name for tool in (await session.list_tools()).tools}
        return before, after

    before, after = run(scenario)
    assert "dyn__test_trigger_tool_change" in before and "dyn__test_dynamic_tool" not in before
    assert after - before == {"dyn__test_dynamic_tool"}
