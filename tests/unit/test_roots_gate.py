"""The roots gate's admission rules: callers with the roots the upstream holds share it, others take
turns in arrival order (none starves), and a caller that gives up leaves no hole behind."""

from __future__ import annotations

import asyncio

from mcpctl.mcpd.supervisor.roots import RootsGate

R = [{"uri": "file:///r"}]
Q = [{"uri": "file:///q"}]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_callers_with_the_held_roots_share_the_upstream_and_others_wait_their_turn() -> None:
    async def scenario() -> list[str]:
        gate = RootsGate()
        order: list[str] = []
        assert await gate.enter(R) is True  # nothing told yet: the first caller switches
        gate.switched()
        assert await gate.enter(R) is False  # same roots: side by side, no switch

        async def caller(name: str, roots: list[dict[str, str]]) -> None:
            switch = await gate.enter(roots)
            order.append(f"{name}{'+switch' if switch else ''}")
            if switch:
                gate.switched()
            await _settle()
            gate.leave()

        waiting_q = asyncio.create_task(caller("q", Q))
        await _settle()
        late_r = asyncio.create_task(caller("r", R))  # holds R like those in flight, but came later
        await _settle()
        assert order == []  # q waits for the R holders; r waits behind q (no starvation)
        gate.leave()
        gate.leave()
        await asyncio.gather(waiting_q, late_r)
        return order

    assert asyncio.run(scenario()) == ["q+switch", "r+switch"]


def test_a_caller_that_gives_up_while_waiting_does_not_block_the_line() -> None:
    async def scenario() -> bool:
        gate = RootsGate()
        await gate.enter(R)
        gate.switched()
        impatient = asyncio.create_task(gate.enter(Q))
        await _settle()
        impatient.cancel()
        await _settle()
        admitted = await asyncio.wait_for(gate.enter(R), 1.0)  # not stuck behind the one that left
        return admitted is False

    assert asyncio.run(scenario())


def test_an_unsettled_switch_makes_the_next_caller_switch_again() -> None:
    async def scenario() -> tuple[bool, bool]:
        gate = RootsGate()
        await gate.enter(R)
        gate.switched(settled=False)  # the upstream may hold either list now
        gate.leave()
        again = await gate.enter(R)
        gate.switched()
        gate.leave()
        return again, await gate.enter(R)

    assert asyncio.run(scenario()) == (True, False)
