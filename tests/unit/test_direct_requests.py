"""What the direct tools/call lane (mcplocal/direct.py) takes for itself, and how it reads a body:
everything unusual goes to the SDK, a body is counted as it comes, a client that left gets nothing."""

from __future__ import annotations

from typing import Any

import pytest

from mcpctl.mcplocal.direct import _body, _direct_call, _replay

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {}}}


def test_a_plain_call_is_taken() -> None:
    call = _direct_call(CALL)
    assert call is not None and call.id == 7 and call.params["name"] == "fx__echo"


@pytest.mark.parametrize(
    "change",
    [
        {"method": "tools/list"},
        {"jsonrpc": "1.0"},
        {"id": True},  # a bool is not an id (True would alias 1)
        {"id": None},
        {"id": 1.5},
        {"params": ["fx__echo"]},
        {"params": {"name": "fx__echo", "_meta": {"progressToken": "p"}}},  # progress: the SDK's
        {"params": {"name": "fx__echo", "_meta": "x"}},
        {"extra": 1},  # a key JSON-RPC does not have
    ],
)
def test_anything_unusual_goes_to_the_sdk(change: dict[str, Any]) -> None:
    assert _direct_call({**CALL, **change}) is None


def receiving(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


@pytest.mark.anyio
async def test_a_body_is_read_whole_counted_and_dropped_when_its_client_leaves() -> None:
    parts = receiving(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    assert await _body(parts, 10) == (b"abcd", True)
    over = receiving(
        {"type": "http.request", "body": b"abcdef", "more_body": True},
        {"type": "http.request", "body": b"ghijkl", "more_body": True},
        {"type": "http.request", "body": b"mn", "more_body": False},
    )
    body, whole = await _body(over, 10)
    assert (body, whole) == (b"abcdefghijkl", False)  # past the limit: the rest is the SDK's to refuse
    gone = receiving({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    assert await _body(gone, 10) == (b"{", None)


@pytest.mark.anyio
async def test_a_body_handed_on_comes_first_then_the_rest() -> None:
    rest = receiving({"type": "http.request", "body": b"tail", "more_body": False})
    replay = _replay(b"head", rest, more=True)
    assert await replay() == {"type": "http.request", "body": b"head", "more_body": True}
    assert await replay() == {"type": "http.request", "body": b"tail", "more_body": False}
