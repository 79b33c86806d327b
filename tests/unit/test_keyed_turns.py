"""Turns per key (core/turns.py): a token opens its sessions one at a time (width 1) and other
tokens are not held up by it; a wider gate lets that many in at once; a cancelled waiter leaves
nothing behind."""

from __future__ import annotations

import anyio
import pytest

from mcpctl.core.turns import KeyedTurns

pytestmark = pytest.mark.anyio


async def test_one_tokens_openings_take_turns_while_another_token_goes_at_once() -> None:
    openings = KeyedTurns(1)
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


async def test_a_wider_gate_lets_that_many_in_and_a_cancelled_waiter_leaves_nothing_behind() -> None:
    turns = KeyedTurns(3)
    inside, most = 0, 0
    release = anyio.Event()

    async def hold() -> None:
        nonlocal inside, most
        async with turns.turn("k"):
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(hold)
            while inside < 3:
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            assert inside == 3  # the other two wait
            tg.cancel_scope.cancel()  # waiters and holders alike
    assert most == 3
    assert len(turns) == 0


def test_a_gate_has_a_width() -> None:
    with pytest.raises(ValueError):
        KeyedTurns(0)
