"""The router's project views are shared by the tokens of a project with the same reach (10,000
tokens cost one view, not 10,000 reads per TTL), and a refusal stays with the token it concerns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from mcpctl.core.policy import Principal
from mcpctl.mcplocal.ports import Caller, ControlPlaneUnavailable, ProjectView
from mcpctl.mcplocal.router import Router, RouterSettings


class Plane:
    """The control-plane port as split mode sees it: the view is read with a caller's token,
    filtered by that token's reach; a revoked token is refused."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.refused: set[str] = set()
        self.down = False
        self.gate = asyncio.Event()
        self.gate.set()

    def watch(self, callback: Any) -> None:
        pass

    async def project(self, caller: Caller) -> ProjectView:
        self.reads.append(caller.bearer)
        await self.gate.wait()
        if self.down:
            raise ControlPlaneUnavailable("mcpd is down")
        if caller.bearer in self.refused:
            raise MCPError(-32001, "mcpd refused the token")
        reach = caller.principal.reach or frozenset()
        return ProjectView(caller.project, tuple(s for s in ("time", "git") if s in reach))


def caller(bearer: str, reach: frozenset[str]) -> Caller:
    principal = Principal(kind="token", token_sha=f"sha-{bearer}", project="p", reach=reach)
    return Caller(principal, bearer)


def router(plane: Plane) -> Router:
    return Router(plane, RouterSettings())  # type: ignore[arg-type]


BOTH = frozenset({"time", "git"})


@pytest.mark.anyio
async def test_tokens_with_the_same_reach_share_one_view_and_another_reach_gets_its_own() -> None:
    plane = Plane()
    r = router(plane)
    for n in range(100):
        assert (await r.project(caller(f"t{n}", BOTH))).servers == ("time", "git")
    assert plane.reads == ["t0"]
    assert (await r.project(caller("narrow", frozenset({"git"})))).servers == ("git",)
    assert plane.reads == ["t0", "narrow"]


@pytest.mark.anyio
async def test_a_refused_token_s_failure_is_not_served_to_another_token_of_the_same_reach() -> None:
    plane = Plane()
    plane.refused.add("revoked")
    plane.gate.clear()
    r = router(plane)
    revoked = asyncio.create_task(r.project(caller("revoked", BOTH)))
    await asyncio.sleep(0)  # the revoked token's read is in flight; the valid one waits for it
    valid = asyncio.create_task(r.project(caller("valid", BOTH)))
    await asyncio.sleep(0)
    plane.gate.set()
    with pytest.raises(MCPError):
        await revoked
    assert (await valid).servers == ("time", "git")
    with pytest.raises(MCPError):  # not remembered: the refused token is refused again, by its own read
        await r.project(caller("revoked", BOTH))
    assert plane.reads == ["revoked", "valid", "revoked"]


@pytest.mark.anyio
async def test_mcpd_unreachable_is_remembered_for_every_token_for_a_second() -> None:
    plane = Plane()
    plane.down = True
    r = router(plane)
    with pytest.raises(ControlPlaneUnavailable):
        await r.project(caller("a", BOTH))
    with pytest.raises(ControlPlaneUnavailable):
        await r.project(caller("b", BOTH))
    assert plane.reads == ["a"]
