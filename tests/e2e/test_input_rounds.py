"""Era translation through the embedded endpoint: a stdio upstream (on mcpd's 2025-11-25 connection)
that asks for sampling, elicitation or roots mid-call, reached by a 2026-07-28 caller, gives it
`input_required` rounds and resumes when the client retries; the caller's declared capabilities decide
what may be asked (-32021 in 2026-07-28, an error answer upstream in 2025-11-25); the rounds are bound
to the token, in time and in count."""

from __future__ import annotations

import itertools
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

from tests.e2e.conftest import Cli, login_admin
from tests.e2e.rawmcp import MODERN, answer_of, headers
from tests.e2e.upstreams import FIXTURE, PYTHON, wait_running

pytestmark = pytest.mark.e2e

WAIT_MS = 2000
MCPD_ENV = {
    "MCPLOCAL_INPUT_WAIT_MS": str(WAIT_MS),
    "MCPLOCAL_MAX_INPUT_WAITS_PER_TOKEN": "2",
    # A health probe in flight when an upstream asks makes the ask unattributable on mcpd's shared
    # connection (connection.py refuses it): probe once, at start.
    "MCPD_PROBE_INTERVAL_SECONDS": "600",
}
SAMPLING = {"sampling": {}}
_ids = itertools.count(1000)
# Time for a refused call to end upstream (its request to the client was answered with an error).
SETTLE = 0.5


# One instance each, so that no test's asks meet another call in flight on the same instance: mcpd's
# shared connection cannot tell whose such a request is then, and refuses it.
SERVERS = ("fx", "fx-deny", "fx-bind", "fx-cap-a", "fx-cap-b", "fx-cap-c", "fx-cap-d")


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    for server in SERVERS:
        op.ok(
            "create",
            "server",
            server,
            "--transport",
            "stdio",
            "--command",
            PYTHON,
            "--arg",
            str(FIXTURE),
            "--arg",
            "--conformance",
        )
    op.ok("create", "project", "rounds", *(arg for server in SERVERS for arg in ("--server", server)))
    for server in SERVERS:
        wait_running(op, server, 1)
    return op


def url(op: Cli) -> str:
    return f"{op.daemon.url}/projects/rounds/mcp"


def mint(op: Cli, name: str) -> str:
    token: str = op.json("create", "mcptoken", name, "-p", "rounds")["token"]
    return token


@asynccontextmanager
async def client(op: Cli, token: str, mode: str, **callbacks: Any) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url(op), http_client=http), mode=mode, **callbacks) as session,  # type: ignore[arg-type]
    ):
        yield session


def sampler(seen: list[str]) -> Any:
    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        content = params.messages[0].content
        seen.append(content.text if isinstance(content, types.TextContent) else "?")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="Paris"), model="test"
        )

    return sample


async def elicit(context: Any, params: Any) -> types.ElicitResult:
    message = str(getattr(params, "message", ""))
    answer = {"color": "blue"} if "color" in message else {"name": "Alice", "context": "tests"}
    return types.ElicitResult(action="accept", content=answer)


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/repo", name="repo")])


def text(result: Any) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_a_2026_caller_answers_a_stdio_upstreams_asks_in_input_required_rounds(op: Cli) -> None:
    token = mint(op, "rounds-sdk")
    seen: list[str] = []

    async def scenario() -> dict[str, Any]:
        async with client(
            op,
            token,
            "2026-07-28",
            sampling_callback=sampler(seen),
            elicitation_callback=elicit,
            list_roots_callback=roots,
        ) as session:
            # the handshake-era tool asks sampling/createMessage mid-call; the SDK client drives the rounds
            sampled = await session.call_tool("fx__test_sampling", {"prompt": "capital of France?"})
            # three rounds (two asks, one after the other), then the result
            multi = await session.call_tool("fx__test_input_required_result_multi_round", {})
            # asks sent together travel in one round
            first = await session.session.call_tool(
                "fx__test_input_required_result_multiple_inputs", {}, allow_input_required=True
            )
            answers: dict[str, Any] = {}
            for key, request in (first.input_requests or {}).items():
                if request.method == "sampling/createMessage":
                    answers[key] = await sampler(seen)(None, request.params)
                elif request.method == "elicitation/create":
                    answers[key] = await elicit(None, request.params)
                else:
                    answers[key] = await roots(None)
            together = await session.session.call_tool(
                "fx__test_input_required_result_multiple_inputs",
                {},
                input_responses=answers,
                request_state=first.request_state,
                allow_input_required=True,
            )
            prompt = await session.get_prompt("fx__test_input_required_result_prompt")
            return {
                "sampled": text(sampled),
                "multi": text(multi),
                "first": first,
                "together": text(together) if isinstance(together, types.CallToolResult) else together,
                "prompt": prompt,
            }

    found = anyio.run(scenario)
    assert found["sampled"] == "LLM response: Paris"
    assert seen[0] == "capital of France?"
    assert found["multi"] == "Favourite colour: blue"
    first = found["first"]
    assert isinstance(first, types.InputRequiredResult)
    assert sorted(request.method for request in (first.input_requests or {}).values()) == [
        "elicitation/create",
        "roots/list",
        "sampling/createMessage",
    ]
    assert first.request_state
    assert found["together"] == "All inputs received for Alice"
    message = found["prompt"].messages[0].content
    assert isinstance(message, types.TextContent) and message.text == "Use this context: tests"


def test_a_2026_caller_that_did_not_declare_the_capability_gets_32021(op: Cli) -> None:
    token = mint(op, "rounds-undeclared")

    async def scenario() -> tuple[MCPError, str]:
        async with client(op, token, "2026-07-28") as session:  # no callbacks: nothing declared
            with pytest.raises(MCPError) as refused:
                await session.call_tool("fx-deny__test_sampling", {"prompt": "hi"})
            # the upstream's call was cancelled and the instance serves the next call
            after = await session.call_tool("fx-deny__echo", {"text": "still here"})
            return refused.value, text(after)

    error, after = anyio.run(scenario)
    assert error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert error.data == {"requiredCapabilities": {"sampling": {}}}
    assert after == "still here"
    time.sleep(SETTLE)
    with httpx.Client(timeout=30) as http:  # on HTTP the spec wants 400 with it
        response = post(http, op, token, "fx-deny__test_missing_capability", {})
        assert response.status_code == 400
        assert answer_of(response)["error"]["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY
        time.sleep(SETTLE)
        # declared: the upstream's sampling request becomes a round
        response = post(http, op, token, "fx-deny__test_missing_capability", {}, SAMPLING)
        assert answer_of(response)["result"]["resultType"] == "input_required"


def post(
    http: httpx.Client,
    op: Cli,
    token: str,
    tool: str,
    arguments: dict[str, Any],
    capabilities: dict[str, Any] | None = None,
    **params: Any,
) -> httpx.Response:
    """A raw 2026-07-28 tools/call declaring `capabilities`, with extra params (a retry's)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
    }
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta, **params},
    }
    routing = {"Mcp-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool}
    return http.post(url(op), json=body, headers={**headers(token), **routing})


def ask_sampling(http: httpx.Client, op: Cli, token: str, server: str) -> dict[str, Any]:
    response = post(http, op, token, f"{server}__test_sampling", {"prompt": "hi"}, SAMPLING)
    result: dict[str, Any] = answer_of(response)["result"]
    assert result["resultType"] == "input_required", result
    ((key, request),) = result["inputRequests"].items()
    assert request["method"] == "sampling/createMessage"
    return {"key": key, "state": result["requestState"]}


ANSWER = {"role": "assistant", "content": {"type": "text", "text": "Paris"}, "model": "m"}


def test_request_state_is_bound_to_the_token_the_request_and_time(op: Cli) -> None:
    alice, mallory = mint(op, "rounds-alice"), mint(op, "rounds-mallory")
    tool = "fx-bind__test_sampling"
    with httpx.Client(timeout=30) as http:
        pending = ask_sampling(http, op, alice, "fx-bind")
        retry = {"inputResponses": {pending["key"]: ANSWER}, "requestState": pending["state"]}
        for token, state, name in (
            (mallory, pending["state"], tool),  # another token
            (alice, pending["state"] + "x", tool),  # tampered
            (alice, pending["state"], "fx-bind__echo"),  # another request
        ):
            refused = post(http, op, token, name, {"text": "x"}, SAMPLING, **{**retry, "requestState": state})
            error = answer_of(refused)["error"]
            assert error["code"] == types.INVALID_PARAMS, error
            assert "requestState" in error["message"]
        # a wrong-shaped answer is refused and the state stays good
        bad = {"inputResponses": {pending["key"]: {"action": "accept"}}, "requestState": pending["state"]}
        error = answer_of(post(http, op, alice, tool, {"prompt": "hi"}, SAMPLING, **bad))["error"]
        assert error["code"] == types.INVALID_PARAMS
        # the rightful retry resumes the upstream call
        done = answer_of(post(http, op, alice, tool, {"prompt": "hi"}, SAMPLING, **retry))
        assert done["result"]["content"][0]["text"] == "LLM response: Paris"
        assert done["result"]["resultType"] == "complete"
        # a state is good for one retry
        again = answer_of(post(http, op, alice, tool, {"prompt": "hi"}, SAMPLING, **retry))
        assert again["error"]["code"] == types.INVALID_PARAMS

        # a call nobody retries is given up after MCPLOCAL_INPUT_WAIT_MS
        late = ask_sampling(http, op, alice, "fx-bind")
        time.sleep(WAIT_MS / 1000 + 0.5)
        retry = {"inputResponses": {late["key"]: ANSWER}, "requestState": late["state"]}
        error = answer_of(post(http, op, alice, tool, {"prompt": "hi"}, SAMPLING, **retry))["error"]
        assert error["code"] == types.INVALID_PARAMS and "expired" in error["message"]
        # its upstream was answered with an error, ended its call, and serves the next one
        time.sleep(SETTLE)
        ask_sampling(http, op, alice, "fx-bind")


def test_calls_waiting_for_input_are_capped_per_token(op: Cli) -> None:
    greedy, other = mint(op, "rounds-greedy"), mint(op, "rounds-other")
    with httpx.Client(timeout=30) as http:
        held = [ask_sampling(http, op, greedy, server) for server in ("fx-cap-a", "fx-cap-b")]
        ask_sampling(http, op, other, "fx-cap-c")  # the cap is per token
        response = post(http, op, greedy, "fx-cap-d__test_sampling", {"prompt": "hi"}, SAMPLING)
        error = answer_of(response)["error"]
        assert "too many calls" in error["message"], error
        for pending, server in zip(held, ("fx-cap-a", "fx-cap-b"), strict=True):  # answering frees them
            retry = {"inputResponses": {pending["key"]: ANSWER}, "requestState": pending["state"]}
            tool = f"{server}__test_sampling"
            done = answer_of(post(http, op, greedy, tool, {"prompt": "hi"}, SAMPLING, **retry))
            assert done["result"]["content"][0]["text"] == "LLM response: Paris"
        ask_sampling(http, op, greedy, "fx-cap-a")


def test_legacy_callers_are_asked_on_their_stream_only_for_what_they_declared(op: Cli) -> None:
    token = mint(op, "rounds-legacy")
    seen: list[str] = []

    async def scenario() -> tuple[str, Any]:
        async with client(op, token, "legacy", sampling_callback=sampler(seen)) as session:
            sampled = text(await session.call_tool("fx__test_sampling", {"prompt": "legacy?"}))
        async with client(op, token, "legacy") as session:  # declares no sampling
            try:
                refused: Any = await session.call_tool("fx__test_sampling", {"prompt": "never asked"})
            except MCPError as exc:
                refused = exc
        return sampled, refused

    sampled, refused = anyio.run(scenario)
    assert sampled == "LLM response: Paris"
    assert seen == ["legacy?"]  # the client without sampling was never sent the request
    # the upstream got the gateway's refusal (the old gateway sent it on, and the client refused)
    said = refused.message if isinstance(refused, MCPError) else text(refused)
    assert isinstance(refused, MCPError) or refused.is_error
    assert "did not declare" in said, said
