"""The router caches a project's view per what the control plane reads it with: per project when
the view is the project's (mcpd embedded: 10,000 tokens cost one view, not 10,000 reads per TTL),
per token when it is read with the caller's token (split mode: that read is also mcpd's re-check of
the token, and its view is filtered by the token's reach as mcpd has it now)."""

from __future__ import annotations

from typing import Any

import pytest

from mcpctl.core.policy import Principal
from mcpctl.mcplocal.ports import Caller, ProjectView
from mcpctl.mcplocal.router import Router, RouterSettings


class Plane:
    """The control-plane port: `views_per_token` as the embedded or the split plane says."""

    def __init__(self, views_per_token: bool) -> None:
        self.views_per_token = views_per_token
        self.reads: list[str] = []
        self.reach_now: dict[str, frozenset[str]] = {}  # mcpd's truth, by bearer (split mode)

    def watch(self, callback: Any) -> None:
        pass

    async def project(self, caller: Caller) -> ProjectView:
        self.reads.append(caller.bearer)
        servers = ("time", "git")
        if self.views_per_token:  # as mcpd's endpoint route filters it: by the reach it has now
            reach = self.reach_now.get(caller.bearer, caller.principal.reach or frozenset())
            servers = tuple(s for s in servers if s in reach)
        return ProjectView(caller.project, servers)


def caller(bearer: str, reach: frozenset[str]) -> Caller:
    principal = Principal(kind="token", token_sha=f"sha-{bearer}", project="p", reach=reach)
    return Caller(principal, bearer)


BOTH = frozenset({"time", "git"})


@pytest.mark.anyio
async def test_embedded_every_token_of_a_project_shares_its_view_and_the_router_applies_each_reach() -> None:
    plane = Plane(views_per_token=False)
    router = Router(plane, RouterSettings())  # type: ignore[arg-type]
    for n in range(100):
        _, servers = await router.servers(caller(f"t{n}", BOTH))
        assert servers == ("time", "git")
    _, servers = await router.servers(caller("narrow", frozenset({"git"})))
    assert servers == ("git",)
    assert plane.reads == ["t0"]


@pytest.mark.anyio
async def test_split_each_token_reads_its_own_view_so_a_stale_reach_never_borrows_another_s() -> None:
    plane = Plane(views_per_token=True)
    router = Router(plane, RouterSettings())  # type: ignore[arg-type]
    broad = caller("broad", BOTH)
    assert (await router.project(broad)).servers == ("time", "git")
    assert (await router.project(broad)).servers == ("time", "git")
    # mcpd narrowed this token to time only; the gateway's cached introspection still says both
    # (as broad's): its own read says time only, whatever broad's view says
    plane.reach_now["narrowed"] = frozenset({"time"})
    assert (await router.project(caller("narrowed", BOTH))).servers == ("time",)
    assert plane.reads == ["broad", "narrowed"]
