"""A cached value is never kept past its own lifetime (a token's introspection past its expiry)."""

from __future__ import annotations

import anyio

from mcpctl.core.ttlcache import TtlCache


def test_a_value_is_kept_for_the_shorter_of_the_positive_ttl_and_its_own_lifetime() -> None:
    now = [0.0]
    fetched: list[str] = []
    cache: TtlCache[str, float] = TtlCache(30.0, 5.0, clock=lambda: now[0], lifetime=lambda value: value)

    async def get(key: str, lifetime: float) -> float:
        async def fetch() -> float:
            fetched.append(key)
            return lifetime

        return await cache.get(key, fetch)

    async def scenario() -> None:
        await get("short", 3.0)
        await get("long", 100.0)
        await get("gone", 0.0)
        now[0] = 2.9
        await get("short", 3.0)
        now[0] = 3.1  # past the short value's own lifetime: fetched again
        await get("short", 3.0)
        await get("long", 100.0)  # kept for the positive TTL
        await get("gone", 0.0)  # a value already over is not kept at all

    anyio.run(scenario)
    assert fetched == ["short", "long", "gone", "short", "gone"]
