"""A token opens its sessions one at a time; other tokens are not held up by it."""

from __future__ import annotations

import anyio
import pytest

from mcpctl.mcplocal.sessions import OneOpeningAtATime

pytestmark = pytest.mark.anyio


async def test_one_tokens_openings_take_turns_while_another_token_goes_at_once() -> None:
    openings = OneOpeningAtATime()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    b_done = anyio.Event()

    async def open_one(token: str, hold: float) -> None:
        async with openings.turn(token):
            inside[token] += 1
            most[token] = max(most[token], inside[token])
            await anyio.sleep(hold)
            inside[token] -= 1
        if token == "b":
            b_done.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(open_one, "a", 0.05)
            await anyio.sleep(0.01)
            tg.start_soon(open_one, "b", 0)
            await b_done.wait()
            assert inside["a"] == 1, "b did not wait for a's queue"
    assert most == {"a": 1, "b": 1}
    assert len(openings) == 0, "no token is remembered once its openings are done"
