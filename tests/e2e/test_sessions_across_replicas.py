"""A legacy (2025-11-25) MCP session survives its replica (DESIGN §11, issue 14): two `mcplocal serve`
replicas share Redis; a session opened on A keeps working on B without a new initialize, including
after A was killed with SIGKILL mid-call; it stays bound to its token; DELETE ends it everywhere; the
log level set on A applies on B."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import BIN, Cli, free_port, login_admin
from tests.e2e.rawmcp import LEGACY, answer_of, headers, legacy_call, open_session
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import FIXTURE, PYTHON, run, wait_for, wait_running
from tests.processes import wait_listening
from tests.support.redis_sessions import keys, redis_url, unique_prefix

pytestmark = pytest.mark.e2e
MCPLOCAL = str(BIN / "mcplocal")
WAIT = 60.0


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "shared", "--server", "fx")
    # the replica killed mid-call gets an upstream of its own: what the kill leaves behind upstream
    # (a cancelled call) stays out of the other tests
    op.ok("create", "server", "fk", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "killed", "--server", "fk")
    wait_running(op, "fx", 1)
    wait_running(op, "fk", 1)
    return op


class Replica:
    """One `mcplocal serve` process."""

    def __init__(self, op: Cli, log: Path, **env: str):
        self.port = free_port()
        self.url = self.project_url("shared")
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [MCPLOCAL, "serve", "--mcpd-url", op.daemon.url, "--port", str(self.port)],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        wait_listening(self.port, self.process, "mcplocal serve")

    def project_url(self, project: str) -> str:
        return f"http://127.0.0.1:{self.port}/projects/{project}/mcp"

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def replicas(
    op: Cli, tmp_path: Path, prefix: str, count: int, *extra: dict[str, str]
) -> Iterator[list[Replica]]:
    """`count` replicas sharing Redis under `prefix`; `extra[n]`: more environment for replica n."""
    env = {"MCPLOCAL_REDIS_URL": redis_url(), "MCPLOCAL_REDIS_CHANNEL": prefix}
    started: list[Replica] = []
    try:
        for n in range(count):
            more = extra[n] if n < len(extra) else {}
            started.append(Replica(op, tmp_path / f"replica-{n}-{time.monotonic_ns()}.log", **env, **more))
        yield started
    finally:
        for replica in started:
            replica.stop()


class Switch(httpx2.AsyncBaseTransport):
    """The SDK client's transport, sending every request to the replica `target` names (a load
    balancer in the client: the client itself knows nothing of replicas)."""

    def __init__(self, target: str):
        self.target = target
        self._inner = httpx2.AsyncHTTPTransport()
        self.sessions: set[str] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = int(self.target.split(":")[2].split("/")[0])
        request.url = request.url.copy_with(port=port)
        response = await self._inner.handle_async_request(request)
        if "mcp-session-id" in response.headers:
            self.sessions.add(response.headers["mcp-session-id"])
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def call(url: str, token: str, session: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return legacy_call(http, url, token, session, tool, arguments)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


async def log_lines_on_b(url: str, token: str, sid: str) -> list[str]:
    """The log lines the session's GET stream on `url` carries after an info and an error line
    (sent outside any request, in that order), once the error line came."""
    heard: list[str] = []
    get_headers = {**headers(token, sid), "Accept": "text/event-stream"}
    with anyio.fail_after(WAIT):
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", url, headers=get_headers) as stream,
        ):
            assert stream.status_code == 200
            for level in ("info", "error"):
                later = {"message": f"{level} line", "level": level}
                sent = await http.post(
                    url, json=call_body("fx__log_later", later), headers=headers(token, sid)
                )
                assert sent.status_code == 200, sent.text
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("method") == "notifications/message":
                        heard.append(str(message["params"]["data"]))
                        if heard[-1] == "error line":
                            break
    return heard


def call_body(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def test_a_session_stays_bound_to_its_token_and_a_delete_on_one_replica_ends_it_on_all(
    op: Cli, tmp_path: Path
) -> None:
    token, stranger = mint(op, "shared", "bound"), mint(op, "shared", "other")
    with (
        unique_prefix() as prefix,
        replicas(op, tmp_path, prefix, 2) as (a, b),
        httpx.Client(timeout=30) as http,
    ):
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        opened = http.post(a.url, json=init, headers=headers(token))
        assert opened.status_code == 200, opened.text
        sid = opened.headers["mcp-session-id"]
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert http.post(a.url, json=done, headers=headers(token, sid)).status_code == 202
        level = {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "error"}}
        assert "result" in answer_of(http.post(a.url, json=level, headers=headers(token, sid)))
        assert [k.rsplit(":", 1)[1] for k in keys(prefix)] == [sid]

        # another token of the same project presenting the id: 404 on both replicas, nothing rebound
        for url in (b.url, a.url):
            refused = legacy_call(http, url, stranger, sid, "fx__echo", {"text": "x"})
            assert refused.status_code == 404, refused.text

        # B takes the session over (no initialize): the client's call works there, and the level it
        # set on A holds: log lines outside requests reach its GET stream (opened on B) from error up
        moved = legacy_call(http, b.url, token, sid, "fx__echo", {"text": "on B"})
        assert moved.status_code == 200 and answer_of(moved)["result"]["content"][0]["text"] == "on B"
        assert run(lambda: log_lines_on_b(b.url, token, sid)) == ["error line"]

        # DELETE on B ends it on A as well (A still holds it: it checks the record within seconds)
        deleted = http.delete(b.url, headers=headers(token, sid))
        assert deleted.status_code == 200, deleted.text
        assert keys(prefix) == []
        wait_for(
            "A to find the session deleted",
            lambda: legacy_call(http, a.url, token, sid, "fx__echo", {"text": "x"}).status_code == 404,
            timeout=15,
            interval=0.5,
        )


def test_a_legacy_session_moves_to_another_replica_and_outlives_a_killed_one(op: Cli, tmp_path: Path) -> None:
    token = mint(op, "killed", "roaming")
    with unique_prefix() as prefix, replicas(op, tmp_path, prefix, 2) as (a, b):
        switch = Switch(a.project_url("killed"))
        seen: dict[str, Any] = {}

        async def scenario() -> None:
            async with (
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {token}"}, timeout=30, transport=switch
                ) as http,
                Client(
                    streamable_http_client(a.project_url("killed"), http_client=http),  # type: ignore[arg-type]
                    mode="legacy",
                ) as session,
            ):
                with anyio.fail_after(WAIT):
                    assert (await session.call_tool("fk__echo", {"text": "on A"})).content[0].text == "on A"  # type: ignore[union-attr]
                    (sid,) = switch.sessions
                    seen["session"] = sid

                    # a long call in flight on A when A is killed fails fast, it does not hang
                    async with httpx.AsyncClient(timeout=30) as raw:
                        body = {
                            "jsonrpc": "2.0",
                            "id": 7,
                            "method": "tools/call",
                            "params": {
                                "name": "fk__progress",
                                "arguments": {"steps": 100, "delay": 0.1},
                                "_meta": {"progressToken": "long"},
                            },
                        }
                        async with raw.stream(
                            "POST", a.project_url("killed"), json=body, headers=headers(token, sid)
                        ) as streamed:
                            assert streamed.status_code == 200
                            lines = streamed.aiter_lines()
                            async for line in lines:  # the first progress: the call is running on A
                                if line.startswith("data:") and "notifications/progress" in line:
                                    break
                            switch.target = b.project_url("killed")
                            killed = time.monotonic()
                            a.kill()
                            with pytest.raises(httpx.HTTPError):
                                async for line in lines:
                                    assert '"id":7' not in line.replace(" ", "")
                            seen["failed_after"] = time.monotonic() - killed

                    # the same client goes on, on B, without a new initialize
                    tools = [t.name for t in (await session.list_tools()).tools]
                    assert "fk__echo" in tools
                    for n in range(20):
                        result = await session.call_tool("fk__echo", {"text": f"on B {n}"})
                        assert result.content[0].text == f"on B {n}"  # type: ignore[union-attr]
                    seen["sessions"] = set(switch.sessions)

            # leaving the client sent DELETE (to B)

        run(scenario)
        sid = seen["session"]
        assert seen["sessions"] == {sid}  # B answered under the same session id
        assert seen["failed_after"] < 5.0
        assert keys(prefix) == []  # the DELETE removed the record

        # after DELETE every replica, a restarted A too, answers 404
        with replicas(op, tmp_path, prefix, 1) as (a2,):
            for url in (a2.project_url("killed"), b.project_url("killed")):
                gone = call(url, token, sid, "fk__echo", {"text": "x"})
                assert gone.status_code == 404, gone.text


def test_a_session_taken_over_counts_against_the_caps_like_a_new_one(op: Cli, tmp_path: Path) -> None:
    token = mint(op, "shared", "capped")
    capped = {"MCPLOCAL_MAX_SESSIONS_PER_TOKEN": "1"}
    with (
        unique_prefix() as prefix,
        replicas(op, tmp_path, prefix, 2, {}, capped) as (a, b),
        httpx.Client(timeout=30) as http,
    ):
        first, second = open_session(http, a.url, token), open_session(http, a.url, token)
        assert legacy_call(http, b.url, token, first, "fx__echo", {"text": "1"}).status_code == 200
        # B holds one session of this token at most: taking the second over closes the first there,
        # and a session closed to make room is gone everywhere
        assert legacy_call(http, b.url, token, second, "fx__echo", {"text": "2"}).status_code == 200
        assert legacy_call(http, b.url, token, first, "fx__echo", {"text": "1"}).status_code == 404
        wait_for("the evicted session's record to go", lambda: keys(prefix) == [f"{prefix}:session:{second}"])
