"""The supervisor with real upstreams, driven the way an operator does: the mcpctl CLI, the official
MCP SDK client through mcpd's per-server proxy, and `kill -9` on the processes it runs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli, login_admin
from tests.e2e.upstreams import (
    FIXTURE,
    INITIALIZE,
    PYTHON,
    TIME_SERVER,
    everything_http,
    instances,
    mcp_client,
    proxy_url,
    require_everything,
    run,
    wait_for,
    wait_running,
)
from tests.processes import pid_alive

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    """The operator: the admin, logged in."""
    return login_admin(make_cli())


def _pids(items: list[dict[str, Any]]) -> list[int]:
    return [item["status"]["pid"] for item in items]


def _kill9_and_see_restart(op: Cli, server: str, count: int) -> None:
    before = wait_running(op, server, count)
    victim = before[0]
    os.kill(victim["status"]["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        item = op.json("get", "instance", victim["metadata"]["name"])
        status = item["status"]
        fresh = status["status"] == "RUNNING" and status["pid"] not in (None, victim["status"]["pid"])
        return item if fresh and status["restarts"] >= 1 else None

    wait_for(f"{victim['metadata']['name']} to restart", restarted)
    described = op.ok("describe", "instance", victim["metadata"]["name"]).stdout
    assert "killed by SIGKILL" in described
    assert "restarted" in described
    others = [i for i in instances(op, server) if i["metadata"]["name"] != victim["metadata"]["name"]]
    assert all(i["status"]["restarts"] == 0 for i in others), "only the killed instance restarts"


def _delete_and_see_nothing_left(op: Cli, server: str) -> None:
    pids = [p for p in _pids(instances(op, server)) if p]
    op.ok("delete", "server", server)
    wait_for(f"every process of {server} to end", lambda: not any(pid_alive(p) for p in pids), timeout=20)
    assert instances(op, server) == []


# ---- the "done when" -------------------------------------------------------------------------


def test_time_server_two_replicas_proxy_restart_delete(op: Cli) -> None:
    op.ok("create", "server", "time", *TIME_SERVER, "--replicas", "2")
    items = wait_running(op, "time", 2)
    pids = _pids(items)
    assert len(set(pids)) == 2 and all(pid_alive(p) for p in pids)
    table = op.ok("get", "instances").stdout.splitlines()
    assert table[0].split() == ["NAME", "SERVER", "STATUS", "HEALTH", "RESTARTS", "PID", "AGE"]
    assert any(line.split()[:4] == ["time-0", "time", "RUNNING", "healthy"] for line in table)

    async def call() -> Any:
        async with mcp_client(proxy_url(op, "time"), op.session_token()) as client:
            listed = await client.list_tools()
            result = await client.call_tool("get_current_time", {"timezone": "UTC"})
            return [t.name for t in listed.tools], result

    names, result = run(call)
    assert "get_current_time" in names
    assert not result.is_error
    assert result.structured_content["timezone"] == "UTC"
    assert result.structured_content["datetime"].startswith("20")

    scrape = {"Authorization": f"Bearer {op.session_token()}"}  # the metrics name every server
    metrics = httpx.get(f"{op.daemon.url}/metrics", headers=scrape, timeout=10).text
    assert 'mcpd_instances{server="time",status="RUNNING"} 2.0' in metrics
    assert 'mcpd_instance_healthy{instance="time-0",server="time"} 1.0' in metrics

    op.ok("create", "project", "clock", "--server", "time")
    in_project = op.ok("get", "instances", "-p", "clock", "-o", "name").stdout.split()
    assert in_project == ["instance/time-0", "instance/time-1"]
    assert op.ok("get", "instances", "-p", "clock", "--server", "other", "-o", "name").stdout.strip() == ""
    op.ok("delete", "project", "clock")

    _kill9_and_see_restart(op, "time", 2)
    _delete_and_see_nothing_left(op, "time")


def test_everything_over_stdio(op: Cli) -> None:
    require_everything()
    op.ok(
        "create", "server", "everything", "--transport", "stdio",
        "--command", "mcp-server-everything", "--arg", "stdio", "--replicas", "2",
    )  # fmt: skip
    wait_running(op, "everything", 2)
    progress: list[float] = []

    async def call() -> Any:
        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        async with mcp_client(proxy_url(op, "everything"), op.session_token()) as client:
            echo = await client.call_tool("echo", {"message": "through mcpd"})
            slow = await client.call_tool(
                "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
            )
            return echo, slow

    echo, slow = run(call)
    assert echo.content[0].text == "Echo: through mcpd"
    assert not slow.is_error
    assert progress == [1.0, 2.0, 3.0], "progress notifications reach the caller that asked, in order"

    _kill9_and_see_restart(op, "everything", 2)
    _delete_and_see_nothing_left(op, "everything")


def test_everything_over_streamable_http(op: Cli) -> None:
    with everything_http() as url:
        op.ok("create", "server", "everything-http", "--transport", "http", "--url", url)
        [item] = wait_running(op, "everything-http", 1)
        assert item["status"]["pid"] is None
        assert item["spec"]["url"] == url

        async def call() -> Any:
            async with mcp_client(proxy_url(op, "everything-http"), op.session_token()) as client:
                return await client.call_tool("get-sum", {"a": 2, "b": 40})

        result = run(call)
        assert not result.is_error
        assert "42" in json.dumps(result.model_dump(mode="json"))
    # the upstream is gone: the instance says so (and keeps trying), it does not stay "healthy"
    wait_for(
        "the http instance to notice its upstream is gone",
        lambda: (
            instances(op, "everything-http")[0]["status"]["status"] in ("BACKOFF", "STARTING")
            or instances(op, "everything-http")[0]["status"]["healthStatus"] in ("degraded", "unhealthy")
        ),
    )
    op.ok("delete", "server", "everything-http")
    assert instances(op, "everything-http") == []


def test_everything_over_legacy_sse(op: Cli) -> None:
    with everything_http("sse") as url:
        op.ok("create", "server", "everything-sse", "--transport", "http", "--url", url)
        wait_running(op, "everything-sse", 1)

        async def call() -> Any:
            async with mcp_client(proxy_url(op, "everything-sse"), op.session_token()) as client:
                return await client.call_tool("echo", {"message": "over sse"})

        assert run(call).content[0].text == "Echo: over sse"
        op.ok("delete", "server", "everything-sse")


# ---- scaling, logs, sharing -------------------------------------------------------------------------


def _fixture_server(op: Cli, name: str, *extra: str) -> None:
    op.ok(
        "create", "server", name, "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE), *extra
    )  # fmt: skip


def test_patch_replicas_scales_up_and_down(op: Cli) -> None:
    _fixture_server(op, "scaled")
    wait_running(op, "scaled", 1)
    op.ok("patch", "server", "scaled", "replicas=3")
    items = wait_running(op, "scaled", 3)
    assert [i["metadata"]["name"] for i in items] == ["scaled-0", "scaled-1", "scaled-2"]
    removed = [i["status"]["pid"] for i in items[1:]]
    op.ok("patch", "server", "scaled", "replicas=1")
    wait_for("scale-down to one instance", lambda: len(instances(op, "scaled")) == 1)
    wait_for("the removed replicas' processes to end", lambda: not any(pid_alive(p) for p in removed))
    assert instances(op, "scaled")[0]["status"]["pid"] == items[0]["status"]["pid"], (
        "the survivor kept running"
    )
    _delete_and_see_nothing_left(op, "scaled")


def test_logs_instance_shows_stderr(op: Cli) -> None:
    _fixture_server(op, "chatty")
    wait_running(op, "chatty", 1)

    async def call() -> None:
        async with mcp_client(proxy_url(op, "chatty"), op.session_token()) as client:
            for text in ("first line", "second line", "third line"):
                await client.call_tool("stderr", {"text": text})

    run(call)
    wait_for(
        "stderr in the ring buffer", lambda: "third line" in op.ok("logs", "instance", "chatty-0").stdout
    )
    lines = op.ok("logs", "instance", "chatty-0").stdout.splitlines()
    assert lines.index("first line") < lines.index("second line") < lines.index("third line")
    assert op.ok("logs", "instance", "chatty-0", "--tail", "1").stdout.splitlines() == ["third line"]
    missing = op("logs", "instance", "nope-0")
    assert missing.returncode == 1 and "NotFound" in missing.stderr
    assert op("logs", "server", "chatty").returncode == 2
    op.ok("delete", "server", "chatty")


def test_sessions_share_replicas_and_requests_are_balanced(op: Cli) -> None:
    _fixture_server(op, "shared", "--replicas", "2")
    pids = set(_pids(wait_running(op, "shared", 2)))

    async def many() -> tuple[list[str], set[int]]:
        import anyio

        echoes: list[str] = []
        seen: set[int] = set()

        async def one(i: int) -> None:
            async with mcp_client(proxy_url(op, "shared"), op.session_token()) as client:
                result = await client.call_tool("echo", {"text": f"caller {i}"})
                echoes.append(result.content[0].text)
                for _ in range(3):
                    seen.add(int((await client.call_tool("pid", {})).content[0].text))

        async with anyio.create_task_group() as group:
            for i in range(8):
                group.start_soon(one, i)
        return echoes, seen

    echoes, seen = run(many)
    assert sorted(echoes) == sorted(f"caller {i}" for i in range(8)), "every caller got its own answer"
    assert seen == pids, "requests are spread over both replicas, and only they serve"
    assert len(instances(op, "shared")) == 2, "eight sessions, still two processes"
    op.ok("delete", "server", "shared")


# ---- who may call -------------------------------------------------------------------------------------


def test_proxy_authorization(op: Cli, make_cli: Callable[[], Cli], tmp_path: Path) -> None:
    _fixture_server(op, "guarded")
    _fixture_server(op, "elsewhere")
    op.ok("create", "project", "guard-proj", "--server", "guarded")
    wait_running(op, "guarded", 1)
    init = INITIALIZE
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(timeout=30) as http:
        anonymous = http.post(proxy_url(op, "guarded"), json=init, headers=headers)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")

        # a user who may view servers but not run them: 403; one who may not even view: 404
        op.ok(
            "create",
            "user",
            "viewer",
            "--email",
            "viewer@example.com",
            "--password-stdin",
            input="Viewer-pass-1\n",
        )
        op.ok(
            "create",
            "rbac",
            "viewer",
            "--subject",
            "User:viewer@example.com",
            "--roleBindings",
            "role:view,resource:servers",
        )
        viewer = make_cli()
        viewer.login("viewer@example.com", "Viewer-pass-1")
        seen = http.post(
            proxy_url(op, "guarded"),
            json=init,
            headers={**headers, "Authorization": f"Bearer {viewer.session_token()}"},
        )
        assert seen.status_code == 403, seen.text
        assert seen.json()["error"]["code"] == "forbidden"
        op.ok(
            "create",
            "user",
            "nobody",
            "--email",
            "nobody@example.com",
            "--password-stdin",
            input="Nobody-pass-1\n",
        )
        nobody = make_cli()
        nobody.login("nobody@example.com", "Nobody-pass-1")
        hidden = http.post(
            proxy_url(op, "guarded"),
            json=init,
            headers={**headers, "Authorization": f"Bearer {nobody.session_token()}"},
        )
        assert hidden.status_code == 404

        # McpTokens (DESIGN §4): only under their project's path, only its servers; with no `run`
        # binding on servers (the default, --rbac empty) every server of the project
        plain = op.json("create", "mcptoken", "plain", "-p", "guard-proj")["token"]
        narrow = op.json(
            "create",
            "mcptoken",
            "narrow",
            "-p",
            "guard-proj",
            "--bind",
            "role:run,resource:servers,name:elsewhere",
        )["token"]
        token = op.json(
            "create", "mcptoken", "agent", "-p", "guard-proj", "--bind", "role:run,resource:servers"
        )["token"]
        bearer = {**headers, "Authorization": f"Bearer {token}"}
        for raw in (plain, token):
            answer = http.post(
                proxy_url(op, "guarded", "guard-proj"),
                json=init,
                headers={**headers, "Authorization": f"Bearer {raw}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["mcp-session-id"]
            assert answer.json()["result"]["serverInfo"]["name"] == "fixture"
        narrowed = {**headers, "Authorization": f"Bearer {narrow}"}
        assert (
            http.post(proxy_url(op, "guarded", "guard-proj"), json=init, headers=narrowed).status_code == 404
        )
        assert http.post(proxy_url(op, "guarded"), json=init, headers=bearer).status_code == 403
        assert (
            http.post(proxy_url(op, "elsewhere", "guard-proj"), json=init, headers=bearer).status_code == 404
        )
        assert http.post(proxy_url(op, "guarded", "other-proj"), json=init, headers=bearer).status_code == 403
        # a session belongs to whoever opened it
        url = proxy_url(op, "guarded", "guard-proj")
        session = http.post(url, json=init, headers=bearer).headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        mine = http.post(url, json=listing, headers={**bearer, "Mcp-Session-Id": session})
        assert mine.status_code == 200 and mine.json()["result"]["tools"]
        other = {**headers, "Authorization": f"Bearer {plain}", "Mcp-Session-Id": session}
        assert http.post(url, json=listing, headers=other).status_code == 404
        admin = {**headers, "Authorization": f"Bearer {op.session_token()}", "Mcp-Session-Id": session}
        assert http.post(url, json=listing, headers=admin).status_code == 404

    async def with_sdk() -> Any:
        async with mcp_client(proxy_url(op, "guarded", "guard-proj"), token) as client:
            return await client.call_tool("echo", {"text": "token ok"})

    assert run(with_sdk).content[0].text == "token ok"
    op.ok("delete", "project", "guard-proj")
    op.ok("delete", "server", "guarded", "elsewhere")


def test_bad_proxy_input_is_refused_clearly(op: Cli) -> None:
    _fixture_server(op, "strict")
    wait_running(op, "strict", 1)
    bearer = {
        "Authorization": f"Bearer {op.session_token()}",
        "Accept": "application/json, text/event-stream",
    }
    url = proxy_url(op, "strict")
    with httpx.Client(timeout=30) as http:
        not_json = http.post(url, content=b"{nope", headers={**bearer, "Content-Type": "application/json"})
        assert not_json.status_code == 400 and not_json.json()["error"]["code"] == -32700
        batch = http.post(url, json=[{"jsonrpc": "2.0", "id": 1, "method": "ping"}], headers=bearer)
        assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
        unknown_session = http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**bearer, "Mcp-Session-Id": "x"},
        )
        assert unknown_session.status_code == 404
        no_server = http.post(
            proxy_url(op, "no-such-server"),
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers=bearer,
        )
        assert no_server.status_code == 404 and no_server.json()["error"]["code"] == "not_found"
        unknown_method = http.post(url, json={"jsonrpc": "2.0", "id": 7, "method": "no/such"}, headers=bearer)
        assert unknown_method.status_code == 200
        assert unknown_method.json()["id"] == 7 and unknown_method.json()["error"]["code"] == -32601
    op.ok("delete", "server", "strict")
