"""The project endpoint's router under faults and bad input: a dead and a hanging upstream next to a
healthy one, pagination with the gateway's own cursor, toolPrefixMode never, and malformed requests."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import Cli, Mcpd, _cli_maker, free_port, login_admin
from tests.e2e.test_project_endpoint import client, endpoint, mint
from tests.e2e.upstreams import ACCEPT, FIXTURE, INITIALIZE, PYTHON, run, wait_running
from tests.fixtures.mcp_fixture_server import ODD_NAMES

pytestmark = pytest.mark.e2e
PAGE = 4
# on top of the upstream settings (conftest `daemon`)
MCPD_ENV = {"MCPLOCAL_PAGE_SIZE": str(PAGE), "MCPLOCAL_DISCOVERY_TIMEOUT_MS": "1500"}


@pytest.fixture(scope="module")
def black_hole() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


@pytest.fixture(scope="module")
def op(daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory, black_hole: str) -> Cli:
    op = login_admin(_cli_maker(daemon, tmp_path_factory.mktemp("clis"))())
    fixture = ("--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "server", "fx", *fixture)
    op.ok("create", "server", "fx-twin", *fixture)
    op.ok("create", "server", "dead", "--transport", "stdio", "--command", "false")
    op.ok("create", "server", "hang", "--transport", "http", "--url", black_hole)
    op.ok("create", "project", "mixed", "--server", "dead", "--server", "hang", "--server", "fx")
    wait_running(op, "fx", 1)
    wait_running(op, "fx-twin", 1)
    return op


def rpc(http: httpx.Client, url: str, token: str, method: str, params: Any = None, **headers: str) -> Any:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": method}
    if params is not None:
        body["params"] = params
    sent = {**ACCEPT, "Authorization": f"Bearer {token}", "Mcp-Protocol-Version": "2025-11-25", **headers}
    return http.post(url, json=body, headers=sent)


def session(http: httpx.Client, url: str, token: str) -> str:
    answer = http.post(url, json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    sid: str = answer.headers["mcp-session-id"]
    http.post(
        url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={**ACCEPT, "Authorization": f"Bearer {token}", "Mcp-Session-Id": sid},
    )
    return sid


def answer_of(response: httpx.Response) -> Any:
    """The JSON-RPC answer in a JSON or SSE body."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def test_broken_upstreams_cost_one_discovery_timeout_then_nothing(op: Cli) -> None:
    token = mint(op, "mixed", "partial")

    async def scenario() -> tuple[list[str], float, float, Any, Any]:
        async with client(endpoint(op, "mixed"), token) as session:
            started = time.monotonic()
            names: list[str] = []
            cursor = None
            while True:
                page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
                names += [t.name for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
            first = time.monotonic() - started
            started = time.monotonic()
            await session.list_tools()
            again = time.monotonic() - started
            good = await session.call_tool("fx__echo", {"text": "still here"})
            bad = await session.call_tool("dead__anything", {})
            return names, first, again, good, bad

    names, first, again, good, bad = run(scenario)
    assert "fx__echo" in names and not any(n.startswith(("dead__", "hang__")) for n in names)
    assert first < 10, f"a hanging upstream held the list for {first:.1f}s"
    assert again < 1.0, "the failed upstreams are remembered (negative TTL), not asked again"
    assert good.content[0].text == "still here"
    assert bad.is_error and 'server "dead"' in bad.content[0].text


def test_pages_follow_the_gateway_cursor(op: Cli, daemon: Mcpd) -> None:
    op.ok("create", "project", "paged", "--server", "fx", "--server", "fx-twin")
    token = mint(op, "paged", "pager")
    url = endpoint(op, "paged")
    with httpx.Client(timeout=30) as http:
        sid = session(http, url, token)
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(100):
            answer = answer_of(
                rpc(
                    http,
                    url,
                    token,
                    "tools/list",
                    {"cursor": cursor} if cursor else None,
                    **{"Mcp-Session-Id": sid},
                )
            )
            tools = answer["result"]["tools"]
            assert 0 < len(tools) <= PAGE
            seen += [t["name"] for t in tools]
            cursor = answer["result"].get("nextCursor")
            if not cursor:
                break
        assert len(seen) == len(set(seen)), "no name twice"
        assert any(n.startswith("fx__") for n in seen) and any(n.startswith("fx-twin__") for n in seen)
        assert seen.index("fx__echo") < seen.index("fx-twin__echo")
        bad = answer_of(
            rpc(http, url, token, "tools/list", {"cursor": "not-a-cursor"}, **{"Mcp-Session-Id": sid})
        )
        assert bad["error"]["code"] == -32602


def test_never_mode_refuses_colliding_names_and_exposes_plain_names(op: Cli) -> None:
    clash = op(
        "create", "project", "clash", "--server", "fx", "--server", "fx-twin", "--tool-prefix-mode", "never"
    )
    assert clash.returncode == 1
    assert 'is offered by servers "fx" and "fx-twin"' in clash.stderr
    assert op("get", "project", "clash").returncode == 1, "nothing was created"
    op.ok("create", "project", "plain", "--server", "fx", "--tool-prefix-mode", "never")
    token = mint(op, "plain", "plain")

    async def names() -> list[str]:
        async with client(endpoint(op, "plain"), token) as session:
            return [t.name for t in (await session.list_tools()).tools]

    assert "echo" in run(names)


def test_bad_input_gets_the_spec_status_never_a_500(op: Cli) -> None:
    token = mint(op, "mixed", "bad-input")
    url = endpoint(op, "mixed")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as http:
        sid = session(http, url, token)
        garbage = http.post(
            url,
            content=b"{not json",
            headers={**ACCEPT, **auth, "Content-Type": "application/json", "Mcp-Session-Id": sid},
        )
        assert garbage.status_code == 400
        wrong_accept = http.post(url, json=INITIALIZE, headers={**auth, "Accept": "text/plain"})
        assert wrong_accept.status_code == 406
        huge = http.post(
            url,
            content=b"[" + b" " * (5 * 1024 * 1024) + b"]",
            headers={**ACCEPT, **auth, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        unknown = answer_of(rpc(http, url, token, "no/such/method", {}, **{"Mcp-Session-Id": sid}))
        assert unknown["error"]["code"] == -32601
        bad_version = rpc(
            http,
            url,
            token,
            "tools/list",
            None,
            **{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "1999-01-01"},
        )
        assert bad_version.status_code == 400
        unknown_tool = answer_of(
            rpc(
                http,
                url,
                token,
                "tools/call",
                {"name": "fx__nope", "arguments": {}},
                **{"Mcp-Session-Id": sid},
            )
        )
        assert "error" in unknown_tool or unknown_tool["result"].get("isError")
        evil_host = http.post(url, json=INITIALIZE, headers={**ACCEPT, **auth, "Host": "evil.example"})
        assert evil_host.status_code in (400, 421)
        evil_origin = http.post(
            url, json=INITIALIZE, headers={**ACCEPT, **auth, "Origin": "http://evil.example"}
        )
        assert evil_origin.status_code == 403


def test_a_hanging_upstream_costs_one_discovery_timeout_for_all_list_kinds(op: Cli, black_hole: str) -> None:
    """A client's first connect lists tools, prompts, resources and templates one after another: a
    hanging server delays them by one discovery timeout (1.5 s here) in all, not one per kind."""
    op.ok("create", "server", "hang-kinds", "--transport", "http", "--url", black_hole)
    op.ok("create", "project", "kinds", "--server", "hang-kinds", "--server", "fx")
    token = mint(op, "kinds", "kinds")

    async def scenario() -> tuple[float, list[str]]:
        async with client(endpoint(op, "kinds"), token) as session:
            started = time.monotonic()
            tools = [t.name for t in (await session.list_tools()).tools]
            await session.list_prompts()
            await session.list_resources()
            await session.list_resource_templates()
            return time.monotonic() - started, tools

    took, tools = run(scenario)
    assert "fx__echo" in tools
    assert took < 2 * 1.5, f"the four lists took {took:.1f}s behind one hanging server"


def test_an_unknown_resource_is_not_found_even_next_to_a_dead_server(op: Cli) -> None:
    """Reading a URI no server lists or matches: "resource not found" (-32002 with the URI), not the
    outage of a server that was only asked as a fallback."""
    op.ok("create", "project", "lookup", "--server", "fx", "--server", "dead")
    token = mint(op, "lookup", "lookup")

    async def scenario() -> tuple[Any, Any]:
        async with client(endpoint(op, "lookup"), token) as session:
            known = await session.read_resource("fixture://hello")
            with pytest.raises(MCPError) as unknown:
                await session.read_resource("fixture://nope")
            return known, unknown.value

    known, unknown = run(scenario)
    assert known.contents[0].text == "hello"
    assert unknown.error.code == -32002
    assert unknown.error.data == {"uri": "fixture://nope"}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_odd_upstream_tool_names_are_exposed_legal_and_call_back_exactly(op: Cli, mode: str) -> None:
    """Dots, slashes, spaces, non-ASCII and names over 64 characters (DESIGN §5 Names), in both
    prefix modes: every exposed name is legal, distinct, and calls the upstream tool it came from."""
    if mode == "legacy":
        fixture = ("--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
        op.ok("create", "server", "odd", *fixture, "--env", "FIXTURE_ODD_TOOL_NAMES=1")
        op.ok("create", "project", "odd-always", "--server", "odd")
        op.ok("create", "project", "odd-never", "--server", "odd", "--tool-prefix-mode", "never")
        wait_running(op, "odd", 1)

    async def scenario(project: str, token: str) -> dict[str, str]:
        answers: dict[str, str] = {}
        async with client(endpoint(op, project), token, mode) as session:
            names: list[str] = []
            cursor = None
            for _ in range(20):  # the module's page size is small
                page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
                assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool.name) for tool in page.tools)
                names += [tool.name for tool in page.tools if (tool.description or "").startswith("Answers")]
                cursor = page.next_cursor
                if not cursor:
                    break
            for name in names:
                result = await session.call_tool(name, {})
                answers[name] = result.content[0].text
        return answers

    for project in ("odd-always", "odd-never"):
        token = mint(op, project, f"odd-{mode.replace('.', '-')}")
        answers = run(lambda: scenario(project, token))  # noqa: B023 (run at once)
        odd = {name: upstream for name, upstream in answers.items() if upstream in ODD_NAMES}
        assert sorted(odd.values()) == sorted(ODD_NAMES), answers  # each shown once, called exactly
        prefix = "odd__" if project == "odd-always" else ""
        assert odd[f"{prefix}read_file"] == "read_file"  # a legal name keeps it
        assert odd[f"{prefix}a_b"] == "a b"


def test_list_kinds_asked_while_one_waits_share_its_discovery_timeout(op: Cli, black_hole: str) -> None:
    """Two clients list tools and, 1 s later, prompts of a project with a hanging server: the
    prompts wait for what is left of the tools' discovery timeout (1.5 s), not a timeout of their own."""
    op.ok("create", "server", "hang-shared", "--transport", "http", "--url", black_hole)
    op.ok("create", "project", "shared", "--server", "hang-shared", "--server", "fx")
    token = mint(op, "shared", "shared")

    async def scenario() -> float:
        async with (
            client(endpoint(op, "shared"), token) as first,
            client(endpoint(op, "shared"), token) as second,
        ):
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                group.start_soon(first.list_tools)
                await anyio.sleep(1.0)
                await second.list_prompts()
            return time.monotonic() - started

    took = run(scenario)
    assert took < 1.5 + 0.6, f"tools then prompts took {took:.1f}s behind one hanging server"
