"""Split mode: `mcplocal serve --mcpd-url` and `mcplocal stdio --project` in front of a real mcpd,
with the SDK client in both eras; mcpd going away and coming back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.e2e.conftest import BIN, Cli, Mcpd, free_port, login_admin
from tests.e2e.test_project_endpoint import client, mint
from tests.e2e.upstreams import FIXTURE, PYTHON, TIME_SERVER, run, wait_for, wait_running
from tests.processes import wait_listening

pytestmark = pytest.mark.e2e
MCPLOCAL = str(BIN / "mcplocal")


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "time", *TIME_SERVER)
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "split", "--server", "time", "--server", "fx")
    wait_running(op, "time", 1)
    wait_running(op, "fx", 1)
    return op


@contextmanager
def mcplocal_serve(daemon: Mcpd, tmp_path: Path, **env: str) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "mcplocal.log").open("wb")
    process = subprocess.Popen(
        [MCPLOCAL, "serve", "--mcpd-url", daemon.url, "--port", str(port)],
        env={**os.environ, "MCPLOCAL_TOKEN_POSITIVE_TTL_MS": "1000", **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, "mcplocal serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_serve_lists_and_calls_through_mcpd(op: Cli, daemon: Mcpd, tmp_path: Path, mode: str) -> None:
    token = mint(op, "split", f"serve-{mode.replace('.', '-')}")
    with mcplocal_serve(daemon, tmp_path) as base:

        async def scenario() -> dict[str, Any]:
            async with client(f"{base}/projects/split/mcp", token, mode) as session:
                tools = [t.name for t in (await session.list_tools()).tools]
                now = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
                progress: list[float] = []

                async def on_progress(done: float, total: float | None, message: str | None) -> None:
                    progress.append(done)

                slow = await session.call_tool("fx__progress", {"steps": 3}, progress_callback=on_progress)
                return {"tools": tools, "now": now, "slow": slow, "progress": progress}

        seen = run(scenario)
    assert "time__get_current_time" in seen["tools"] and "fx__echo" in seen["tools"]
    assert not seen["now"].is_error and "UTC" in seen["now"].content[0].text
    assert not seen["slow"].is_error
    assert seen["progress"], "progress notifications reach the caller through mcplocal and mcpd"

    def audited() -> list[dict[str, Any]] | None:  # written off the hot path, within a second
        events = op.json("get", "auditevents", "-p", "split", "--token", f"serve-{mode.replace('.', '-')}")
        calls = [e["spec"] for e in events["items"] if e["spec"]["kind"] == "tool_call"]
        return calls if {e["target"] for e in calls} >= {"get_current_time", "progress"} else None

    calls = wait_for("the audit events", audited, timeout=10)
    assert all(e["outcome"] == "ok" and e["server"] in ("time", "fx") for e in calls)
    # the downstream session (legacy era) is on the rows; 2026-07-28 is stateless
    assert all(bool(e["sessionId"]) == (mode == "legacy") for e in calls)


def test_serve_health_and_mcpd_outage(op: Cli, daemon: Mcpd, tmp_path: Path) -> None:
    token = mint(op, "split", "outage")
    with mcplocal_serve(daemon, tmp_path) as base, httpx.Client(timeout=10) as http:
        assert http.get(f"{base}/healthz").status_code == 200
        assert http.get(f"{base}/readyz").status_code == 200
        daemon.stop()
        try:
            assert http.get(f"{base}/readyz").status_code == 503
            assert http.get(f"{base}/healthz").status_code == 200
            answer = http.post(
                f"{base}/projects/split/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
            )
            assert answer.status_code == 503
        finally:
            daemon.start()
        wait_for("mcplocal to see mcpd again", lambda: http.get(f"{base}/readyz").status_code == 200)
        wait_running(op, "time", 1)

        async def listed() -> list[str]:
            async with client(f"{base}/projects/split/mcp", token) as session:
                return [t.name for t in (await session.list_tools()).tools]

        assert "time__get_current_time" in run(listed)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_stdio_serves_both_eras_and_rereads_the_token_file(
    op: Cli, daemon: Mcpd, tmp_path: Path, mode: str
) -> None:
    first_name, second_name = f"stdio-1-{mode[:4]}", f"stdio-2-{mode[:4]}"
    token_file = tmp_path / "token"
    token_file.write_text(mint(op, "split", first_name) + "\n")
    params = StdioServerParameters(
        command=MCPLOCAL,
        args=["stdio", "--project", "split", "--mcpd-url", daemon.url],
        env={"MCPCTL_TOKEN_FILE": str(token_file), "PATH": os.environ["PATH"]},
    )

    async def scenario() -> tuple[list[str], str, str]:
        async with Client(stdio_client(params, errlog=sys.stderr), mode=mode) as session:  # type: ignore[arg-type]
            tools = [t.name for t in (await session.list_tools()).tools]
            first = await session.call_tool("fx__echo", {"text": "one"})
            # re-provisioning: the old token is revoked and a new one written to the same file
            op.ok("revoke", "mcptoken", first_name, "-p", "split")
            token_file.write_text(mint(op, "split", second_name))
            wait_for("the token cache to expire", lambda: True, timeout=0.1)
            second = await session.call_tool("fx__echo", {"text": "two"})
            return tools, first.content[0].text, second.content[0].text

    tools, first, second = run(scenario)
    assert "fx__echo" in tools
    assert (first, second) == ("one", "two")
