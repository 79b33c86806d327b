"""A legacy session's plain tools/call is answered without the SDK's per-request machinery
(mcplocal/direct.py), with everything the SDK path gives: the same answers and errors, the upstream's
sampling and elicitation requests and log lines on the call's stream, cancellation, the session's
idle clock, and every refusal the SDK makes (another token's session, a foreign Host). mcpd runs at
debug level, which logs each direct answer: every test checks which path answered."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from tests.e2e import rawmcp
from tests.e2e.conftest import Cli, Mcpd, login_admin, running_mcpd
from tests.e2e.upstreams import FIXTURE, PYTHON, require_everything, run, wait_for, wait_running

pytestmark = pytest.mark.e2e
IDLE_SECONDS = 3
DIRECT = re.compile(r"tools/call (\S+) of session \S+ answered directly")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mcpd]:
    env = {"MCPD_LOG_LEVEL": "debug", "MCPLOCAL_SESSION_IDLE_SECONDS": str(IDLE_SECONDS)}
    with running_mcpd(tmp_path_factory.mktemp("direct"), "sqlite", **env) as mcpd:
        yield mcpd


@pytest.fixture(scope="module")
def op(daemon: Mcpd, make_cli: Callable[[], Cli]) -> Cli:
    everything = require_everything()
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "server", "ev", "--transport", "stdio", "--command", str(everything), "--arg", "stdio")
    op.ok("create", "project", "direct", "--server", "fx", "--server", "ev")
    wait_running(op, "fx", 1)
    wait_running(op, "ev", 1)
    return op


def mint(op: Cli, name: str) -> str:
    token: str = op.json("create", "mcptoken", name, "-p", "direct")["token"]
    return token


def url(op: Cli) -> str:
    return f"{op.daemon.url}/projects/direct/mcp"


def direct_ids(daemon: Mcpd) -> list[Any]:
    return [json.loads(found) for found in DIRECT.findall(daemon.log())]


@asynccontextmanager
async def client(op: Cli, token: str, **callbacks: Any) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url(op), http_client=http), mode="legacy", **callbacks) as session,  # type: ignore[arg-type]
    ):
        yield session


def text(result: types.CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


CASES = [
    ("fx__echo", {"text": "hé ☃"}),
    ("fx__add", {"a": 2, "b": 3}),  # a structured result
    ("fx__fail", {"message": "no"}),  # an isError result
    ("fx__nope", {}),  # an unknown tool
    ("fx__add", {"a": "two", "b": 3}),  # arguments the tool refuses
    ("fx__echo", []),  # arguments that are not an object: the SDK's INVALID_PARAMS
]


def test_plain_calls_are_answered_directly_as_the_sdk_answers_them(op: Cli, daemon: Mcpd) -> None:
    """Each call twice on one session: plainly (answered directly) and with a progress token (which
    the SDK answers): the same JSON-RPC answers."""
    token = mint(op, "plain")
    with httpx.Client(timeout=30) as http:
        session = warm_session(http, op, token)
        before = len(direct_ids(daemon))
        for n, (tool, arguments) in enumerate(CASES):
            answers = []
            for meta in ({}, {"_meta": {"progressToken": f"p{n}"}}):
                body = {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments, **meta},
                }
                response = http.post(url(op), json=body, headers=rawmcp.headers(token, session))
                assert response.status_code == 200, response.text
                assert response.headers["content-type"].startswith("text/event-stream")
                answers.append(rawmcp.answer_of(response))
            assert answers[0] == answers[1], tool
        assert direct_ids(daemon)[before:] == list(range(len(CASES)))


def test_the_upstream_s_requests_and_log_lines_reach_the_client_on_the_call_s_stream(
    op: Cli, daemon: Mcpd
) -> None:
    token = mint(op, "asks")
    asked: list[str] = []
    logged: list[str] = []

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.append("sampling")
        content = types.TextContent(type="text", text="sampled by the client")
        return types.CreateMessageResult(role="assistant", content=content, model="m")

    async def elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Ada", "check": True})

    async def logging(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(str(params.data))

    async def scenario() -> tuple[str, str, str]:
        callbacks = {
            "sampling_callback": sampling,
            "elicitation_callback": elicitation,
            "logging_callback": logging,
        }
        async with client(op, token, **callbacks) as session:
            await session.call_tool("fx__echo", {"text": "a session's first call goes through the SDK"})
            sampled = await session.call_tool("ev__trigger-sampling-request", {"prompt": "hi"})
            elicited = await session.call_tool("ev__trigger-elicitation-request", {})
            said = await session.call_tool(
                "fx__log", {"message": "through the direct lane", "level": "warning"}
            )
            return text(sampled), text(elicited), text(said)

    before = len(direct_ids(daemon))
    sampled, elicited, _ = run(scenario)
    assert asked == ["sampling", "elicitation"]
    assert "sampled by the client" in sampled
    assert "Ada" in elicited
    assert "through the direct lane" in logged
    assert len(direct_ids(daemon)) - before == 3


def test_a_call_with_a_progress_token_goes_through_the_sdk_and_gets_its_progress(
    op: Cli, daemon: Mcpd
) -> None:
    token = mint(op, "progress")
    steps: list[float] = []

    async def progressed(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async def scenario() -> str:
        async with client(op, token) as session:
            result = await session.call_tool("fx__progress", {"steps": 3}, progress_callback=progressed)
            return text(result)

    before = len(direct_ids(daemon))
    run(scenario)
    assert len(steps) == 3
    assert len(direct_ids(daemon)) == before  # the SDK answered it


def warm_session(http: httpx.Client, op: Cli, token: str) -> str:
    """A legacy session whose first call is made (a session's first request goes through the SDK,
    which records it for the endpoint)."""
    session = rawmcp.open_session(http, url(op), token)
    rawmcp.legacy_call(http, url(op), token, session, "fx__echo", {"text": "first"})
    return session


def slow_call(
    op: Cli, token: str, session: str, request_id: str, daemon: Mcpd
) -> tuple[threading.Thread, dict[str, Any]]:
    """A 20 s fx__sleep on the session, from its own thread and connection, once answered directly."""
    call = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "fx__sleep", "arguments": {"seconds": 20}},
    }
    ended: dict[str, Any] = {}

    def slow() -> None:
        began = time.monotonic()
        with httpx.Client(timeout=30) as own:
            response = own.post(url(op), json=call, headers=rawmcp.headers(token, session))
        ended.update(status=response.status_code, body=response.text, took=time.monotonic() - began)

    caller = threading.Thread(target=slow)
    caller.start()
    deadline = time.monotonic() + 10
    while request_id not in direct_ids(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert request_id in direct_ids(daemon)
    return caller, ended


def test_notifications_cancelled_ends_a_direct_call_and_the_session_goes_on(op: Cli, daemon: Mcpd) -> None:
    token = mint(op, "cancel")
    with httpx.Client(timeout=30) as http:
        session = warm_session(http, op, token)
        caller, ended = slow_call(op, token, session, "slow-1", daemon)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow-1"}}
        accepted = http.post(url(op), json=cancel, headers=rawmcp.headers(token, session))
        assert accepted.status_code == 202
        caller.join(10)
        assert ended["status"] == 200 and ended["took"] < 10
        assert '"result"' not in ended["body"] and '"error"' not in ended["body"]  # ended without an answer
        again = rawmcp.legacy_call(http, url(op), token, session, "fx__echo", {"text": "still here"})
        assert "still here" in json.dumps(rawmcp.answer_of(again))


def test_a_client_that_hangs_up_mid_call_ends_its_direct_call(op: Cli, daemon: Mcpd) -> None:
    """The call hears its connection end (http_protocol's DISCONNECTED future, no task watching
    `receive()`) and ends with its upstream call: its audit event is written within seconds, not
    when the upstream's 20 s sleep would have ended."""
    token = mint(op, "hangup")
    with httpx.Client(timeout=30) as http:
        session = warm_session(http, op, token)
    call = {
        "jsonrpc": "2.0",
        "id": "hung-up",
        "method": "tools/call",
        "params": {"name": "fx__sleep", "arguments": {"seconds": 20}},
    }
    body = json.dumps(call).encode()
    target = httpx.URL(url(op))
    head = [f"POST {target.raw_path.decode()} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    head += [f"{k}: {v}" for k, v in rawmcp.headers(token, session).items()]
    head += [f"Content-Length: {len(body)}", "", ""]
    with socket.create_connection((target.host, target.port), timeout=10) as client:
        client.sendall("\r\n".join(head).encode() + body)
        deadline = time.monotonic() + 10
        while "hung-up" not in direct_ids(daemon) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hung-up" in direct_ids(daemon)
    hung_up = time.monotonic()

    def audited() -> dict[str, Any] | None:
        items = op.json("get", "auditevents", "-p", "direct", "--token", "hangup")["items"]
        slept = [e["spec"] for e in items if e["spec"]["target"] == "sleep"]
        return slept[0] if slept else None

    event = wait_for("the hung-up call's audit event", audited, timeout=10)
    assert time.monotonic() - hung_up < 10 and event["durationMs"] < 10_000
    with httpx.Client(timeout=30) as http:  # and the session goes on
        again = rawmcp.legacy_call(http, url(op), token, session, "fx__echo", {"text": "after"})
        assert "after" in json.dumps(rawmcp.answer_of(again))


def test_a_session_that_ends_mid_call_ends_its_direct_call(op: Cli, daemon: Mcpd) -> None:
    token = mint(op, "deleted")
    with httpx.Client(timeout=30) as http:
        session = warm_session(http, op, token)
        caller, ended = slow_call(op, token, session, "doomed", daemon)
        deleted = http.delete(url(op), headers=rawmcp.headers(token, session))
        assert deleted.status_code == 200
        caller.join(15)
        assert ended["took"] < 10 and '"result"' not in ended["body"]


def test_a_call_longer_than_the_idle_time_keeps_its_session(op: Cli, daemon: Mcpd) -> None:
    token = mint(op, "idle")
    with httpx.Client(timeout=30) as http:
        session = warm_session(http, op, token)
        before = len(direct_ids(daemon))
        slow = rawmcp.legacy_call(http, url(op), token, session, "fx__sleep", {"seconds": IDLE_SECONDS + 1.5})
        assert "error" not in rawmcp.answer_of(slow)
        after = rawmcp.legacy_call(http, url(op), token, session, "fx__echo", {"text": "kept"})
        assert after.status_code == 200 and "kept" in json.dumps(rawmcp.answer_of(after))
        assert len(direct_ids(daemon)) - before == 2
        time.sleep(IDLE_SECONDS + 1.5)  # and an idle session still ends
        gone = rawmcp.legacy_call(http, url(op), token, session, "fx__echo", {"text": "late"})
        assert gone.status_code == 404


def test_what_the_sdk_refuses_is_refused_the_same(op: Cli, daemon: Mcpd) -> None:
    token, other = mint(op, "owner"), mint(op, "other")
    with httpx.Client(timeout=30) as http:
        session = rawmcp.open_session(http, url(op), token)
        warm = rawmcp.legacy_call(http, url(op), token, session, "fx__echo", {"text": "mine"})
        assert warm.status_code == 200
        before = len(direct_ids(daemon))
        stolen = rawmcp.legacy_call(http, url(op), other, session, "fx__echo", {"text": "theirs"})
        assert stolen.status_code == 404  # another token's session does not exist for it
        foreign = rawmcp.legacy_call(
            http, url(op), token, session, "fx__echo", {"text": "x"}, Host="evil.example"
        )
        assert foreign.status_code == 421
        no_sse = rawmcp.legacy_call(
            http, url(op), token, session, "fx__echo", {"text": "x"}, Accept="application/json"
        )
        assert no_sse.status_code == 406
        assert len(direct_ids(daemon)) == before
