"""input_required rounds on their own: caps per token and in total, asks sent together in one round,
a client gone mid-call cancels its call. (The whole path, with a real stdio upstream and the SDK
client, is tests/e2e/test_input_rounds.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from mcpctl.mcplocal.input_rounds import InputRounds, InputRoundsSettings
from mcpctl.mcplocal.ports import Notify, Relay

pytestmark = pytest.mark.anyio

SAMPLING = {"sampling": {}, "roots": {}}
ASK = {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}
ANSWER = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}


def asking(*asks: dict[str, Any], seen: list[Any] | None = None) -> Any:
    """A call that sends `asks` to the client together, then answers with what came back."""

    async def start(notify: Notify, relay: Relay) -> dict[str, Any]:
        answers = await asyncio.gather(*(relay(ask) for ask in asks))
        if seen is not None:
            seen.extend(answers)
        return {"content": [], "answers": answers}

    return start


async def test_asks_sent_together_make_one_round_and_the_retry_resumes_the_call() -> None:
    rounds = InputRounds()
    roots = {"method": "roots/list", "params": {}}
    first = await rounds.run("t", "tools/call", {"name": "x"}, SAMPLING, None, asking(ASK, roots))
    assert first["resultType"] == "input_required"
    keys = sorted(first["inputRequests"])
    assert [first["inputRequests"][k]["method"] for k in keys] == ["roots/list", "sampling/createMessage"]
    responses = {k: ANSWER if k.startswith("sampling") else {"roots": []} for k in keys}
    retry = {"name": "x", "inputResponses": responses, "requestState": first["requestState"]}
    done = await rounds.run("t", "tools/call", retry, SAMPLING, None, asking())
    assert done["answers"] == [{"result": ANSWER}, {"result": {"roots": []}}]
    assert len(rounds.waits) == 0


async def test_calls_waiting_for_input_are_capped_per_token_and_in_total() -> None:
    rounds = InputRounds(InputRoundsSettings(wait_seconds=30, max_per_token=2, max_total=3))
    seen: list[Any] = []
    for token in ("a", "a", "b"):
        parked = await rounds.run(token, "tools/call", {"name": "x"}, SAMPLING, None, asking(ASK))
        assert parked["resultType"] == "input_required"
    with pytest.raises(MCPError, match="this token's"):
        await rounds.run("a", "tools/call", {"name": "x"}, SAMPLING, None, asking(ASK, seen=seen))
    with pytest.raises(MCPError, match="all"):
        await rounds.run("c", "tools/call", {"name": "x"}, SAMPLING, None, asking(ASK))
    await asyncio.sleep(0.01)
    assert seen and "error" in seen[0], "the refused call's upstream got an error answer"
    rounds.close()
    assert len(rounds.waits) == 0


async def test_an_undeclared_capability_is_32021_and_a_client_gone_cancels_the_call() -> None:
    rounds = InputRounds()
    with pytest.raises(MCPError) as refused:
        await rounds.run("t", "tools/call", {"name": "x"}, {"roots": {}}, None, asking(ASK))
    assert refused.value.code == -32021
    assert refused.value.error.data == {"requiredCapabilities": {"sampling": {}}}

    cancelled = asyncio.Event()

    async def slow(notify: Notify, relay: Relay) -> dict[str, Any]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    waiter = asyncio.ensure_future(rounds.run("t", "tools/call", {"name": "x"}, SAMPLING, None, slow))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_a_refused_call_that_does_not_end_on_its_own_is_cancelled_after_the_grace() -> None:
    rounds = InputRounds(InputRoundsSettings(ending_grace_seconds=0.05))
    outcome: list[str] = []

    async def stubborn(notify: Notify, relay: Relay) -> dict[str, Any]:
        answer = await relay(ASK)  # not declared: answered with an error at once
        outcome.append("error" if "error" in answer else "result")
        try:
            await asyncio.sleep(30)  # and goes on working
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return {}

    with pytest.raises(MCPError):
        await rounds.run("t", "tools/call", {"name": "x"}, {}, None, stubborn)
    await asyncio.sleep(0.2)
    assert outcome == ["error", "cancelled"]
