"""The token gate keeps as many tokens as the setting says: 10,000 tokens in use (issue 16's scaling
target) are each checked once per TTL, not on every call (the cache held 10,000 entries at most, and
a rotation over more than that missed on every call)."""

from __future__ import annotations

import pytest

from mcpctl.core.policy import Principal
from mcpctl.mcplocal.http import TokenGate
from mcpctl.mcplocal.ports import Introspection
from mcpctl.mcplocal.settings import GatewaySettings


class Plane:
    def __init__(self) -> None:
        self.introspections = 0

    async def introspect(self, bearer: str) -> Introspection:
        self.introspections += 1
        principal = Principal(kind="token", token_sha=bearer, project="p", reach=frozenset({"s"}))
        return Introspection(ok=True, principal=principal)


@pytest.mark.anyio
async def test_twelve_thousand_tokens_in_rotation_are_checked_once_each() -> None:
    plane = Plane()
    settings = GatewaySettings()
    gate = TokenGate(plane, 30.0, 5.0, settings.token_cache_entries)  # type: ignore[arg-type]
    bearers = [f"token-{n}" for n in range(12_000)]
    for _ in range(2):
        for bearer in bearers:
            await gate.check(bearer)
    assert plane.introspections == len(bearers)


@pytest.mark.anyio
async def test_beyond_its_capacity_the_oldest_token_is_checked_again() -> None:
    plane = Plane()
    gate = TokenGate(plane, 30.0, 5.0, max_entries=100)  # type: ignore[arg-type]
    for n in range(101):
        await gate.check(f"token-{n}")
    await gate.check("token-100")
    assert plane.introspections == 101
    await gate.check("token-0")
    assert plane.introspections == 102
