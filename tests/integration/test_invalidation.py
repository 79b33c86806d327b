"""Cross-replica invalidation through the real Redis (DESIGN §11): the bus's round trip, own messages
ignored, installations kept apart, publishing that never waits for Redis, reconnection with a catch-up,
and two mcpd apps on one database whose embedded endpoints hear each other's revocations and changes,
with /readyz and /metrics saying whether Redis is there."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcpctl.core import invalidation as wire
from mcpctl.mcplocal.__main__ import data_plane
from mcpctl.mcplocal.invalidation import BusSettings, InvalidationBus
from mcpctl.mcplocal.settings import GatewaySettings
from tests.e2e.rawmcp import INITIALIZE
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings, running
from tests.support.redis import TcpProxy, require_redis, unique_prefix

pytestmark = pytest.mark.anyio

SHA = "c" * 64
WAIT = 5.0
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
QUICK = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2, "socket_timeout_seconds": 2.0}


async def until(what: str, condition: Callable[[], Any], timeout: float = WAIT) -> float:
    """Poll `condition` (bounded); the seconds it took."""
    import anyio

    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        await anyio.sleep(0.01)
    return time.monotonic() - started


@asynccontextmanager
async def bus(url: str, prefix: str, **extra: Any) -> AsyncIterator[tuple[InvalidationBus, list[Any]]]:
    """A started bus; what it heard (messages, and "catch-up" markers) in one list."""
    heard: list[Any] = []
    one = InvalidationBus(
        BusSettings(url, prefix, **{**QUICK, **extra}), heard.append, lambda: heard.append("catch-up")
    )
    one.start()
    try:
        yield one, heard
    finally:
        await one.close()


async def test_other_processes_hear_a_revocation_and_a_change_and_nobody_hears_its_own() -> None:
    url, prefix = require_redis(), unique_prefix()
    async with bus(url, prefix) as (a, heard_a), bus(url, prefix) as (b, heard_b):
        assert await a.wait_subscribed(WAIT) and await b.wait_subscribed(WAIT)
        a.tokens_ended([SHA])
        a.changed(["p1"])
        await until("b hears a", lambda: len(heard_b) == 2)
        assert heard_b == [wire.TokensEnded(a.origin, (SHA,)), wire.Changed(a.origin, ("p1",))]
        b.changed()  # published after a's own: by the time a hears it, a's would have arrived
        await until("a hears b", lambda: heard_a)
        assert heard_a == [wire.Changed(b.origin, None)]
        assert b.counters.applied == {wire.TOKENS_ENDED: 1, wire.CHANGED: 1}
        assert a.counters.published == 2


async def test_installations_sharing_a_redis_do_not_hear_each_other() -> None:
    url = require_redis()
    async with (
        bus(url, unique_prefix()) as (a, _),
        bus(url, unique_prefix()) as (other, heard_other),
        bus(url, a.settings.channel_prefix) as (same, heard_same),
    ):
        assert await other.wait_subscribed(WAIT) and await same.wait_subscribed(WAIT)
        a.tokens_ended([SHA])
        await until("the same installation hears it", lambda: heard_same)
        assert heard_other == []


async def test_unknown_messages_on_the_channel_are_ignored() -> None:
    import redis.asyncio as aioredis

    url, prefix = require_redis(), unique_prefix()
    async with bus(url, prefix) as (b, heard):
        assert await b.wait_subscribed(WAIT)
        raw = aioredis.Redis.from_url(url)
        try:
            for junk in (
                b"{",
                b'{"v":2,"kind":"changed","origin":"x"}',
                b'{"v":1,"kind":"wipe","origin":"x"}',
            ):
                await raw.publish(wire.channel(prefix), junk)
            await raw.publish(wire.channel(prefix), wire.encode(wire.changed("marker")))
        finally:
            await raw.aclose()
        await until("the marker", lambda: heard)
        assert heard == [wire.Changed("marker", None)]


async def test_publishing_never_waits_for_redis_and_its_queue_is_bounded() -> None:
    require_redis()
    proxy = TcpProxy()
    await proxy.start()
    await proxy.stop()  # a port nothing listens on
    async with bus(proxy.url, unique_prefix(), queue_max=10) as (a, _):
        started = time.monotonic()
        for _ in range(1000):
            a.tokens_ended([SHA])
        assert time.monotonic() - started < 0.5
        assert a.counters.dropped >= 990  # beyond the bound: folded into one "anything changed"
        await until("a publish attempt failed", lambda: a.counters.publish_failures > 0)
        assert not a.connected


async def test_after_redis_comes_back_the_subscriber_reconnects_and_drops_cached_state_once() -> None:
    url, prefix = require_redis(), unique_prefix()
    proxy = TcpProxy()
    await proxy.start()
    try:
        async with bus(url, prefix) as (a, _), bus(proxy.url, prefix) as (b, heard):
            assert await a.wait_subscribed(WAIT) and await b.wait_subscribed(WAIT)
            await proxy.stop()
            await until("b sees Redis gone", lambda: not b.connected)
            a.tokens_ended([SHA])  # missed by b
            await until("a published it", lambda: a.counters.published == 1)
            await proxy.start()
            await until("b subscribed again", lambda: b.connected)
            assert heard == ["catch-up"] and b.counters.reconnects == 1
            a.changed()
            await until("b hears a again", lambda: len(heard) == 2)
            assert heard[1] == wire.Changed(a.origin, None)
    finally:
        await proxy.stop()


async def test_a_redis_that_stops_answering_without_closing_is_noticed_and_caught_up() -> None:
    url, prefix = require_redis(), unique_prefix()
    proxy = TcpProxy()
    await proxy.start()
    try:
        quick = {"health_check_seconds": 0.2, "socket_timeout_seconds": 0.5}
        async with bus(url, prefix) as (a, _), bus(proxy.url, prefix, **quick) as (b, heard):
            assert await a.wait_subscribed(WAIT) and await b.wait_subscribed(WAIT)
            proxy.frozen = True
            await until("b gives the silent connection up", lambda: not b.connected)
            proxy.frozen = False
            await until("b subscribed again", lambda: b.connected)
            assert heard == ["catch-up"]
    finally:
        await proxy.stop()


async def test_mcplocal_applies_published_revocations_like_the_links_ended_frame() -> None:
    url, prefix = require_redis(), unique_prefix()
    settings = GatewaySettings(mcpd_url="http://127.0.0.1:9", redis_url=url, redis_channel=prefix)
    plane, _router, gate, local = data_plane(settings)
    assert local is not None
    ended: list[str] = []
    gate.on_token_ended(ended.append)
    local.start(publish=False)
    try:
        async with bus(url, prefix) as (mcpd, _):
            assert await local.wait_subscribed(WAIT) and await mcpd.wait_subscribed(WAIT)
            mcpd.tokens_ended([SHA])
            await until("mcplocal ends the token", lambda: ended == [SHA])
    finally:
        await local.close()
        await plane.close()


# ---- two mcpd apps on one database -------------------------------------------------------------------


@asynccontextmanager
async def replica(
    tmp_path: Path, name: str, database_url: str, redis_url: str, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], Any]]:
    settings = make_settings(
        tmp_path / name,
        database_url,
        secret_key="one-key-for-every-replica",
        redis_url=redis_url,
        redis_channel=prefix,
    )
    async with running(settings) as (app, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        gateway = app.state.mcpd.gateway
        assert await gateway.bus.wait_subscribed(WAIT)
        yield client, {"Authorization": f"Bearer {login.json()['token']}"}, gateway


async def _open(client: httpx.AsyncClient, token: str) -> int:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
    return (await client.post("/projects/p/mcp", json=INITIALIZE, headers=headers)).status_code


async def test_a_revocation_at_one_mcpd_reaches_another_mcpds_endpoint_within_a_second(
    tmp_path: Path,
) -> None:
    url, prefix = require_redis(), unique_prefix()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with (
        replica(tmp_path, "a", database_url, url, prefix) as (a, admin_a, _),
        replica(tmp_path, "b", database_url, url, prefix) as (b, _admin_b, gateway_b),
    ):
        assert (
            await a.put("/api/v1/projects/p", json={"metadata": {"name": "p"}, "spec": {}}, headers=admin_a)
        ).status_code == 201
        minted = await a.post("/api/v1/mcptokens", json={"project": "p", "name": "t"}, headers=admin_a)
        assert minted.status_code == 201, minted.text
        token, token_id = minted.json()["token"], minted.json()["mcpToken"]["metadata"]["id"]
        assert await _open(b, token) == 200  # b caches the introspection for 30 s
        changed_before = gateway_b.bus.counters.applied.get(wire.CHANGED, 0)
        revoked = await a.post(f"/api/v1/mcptokens/{token_id}/revoke", headers=admin_a)
        assert revoked.status_code == 200, revoked.text
        took = await until(
            "b refuses the revoked token", lambda: gateway_b.bus.counters.applied.get(wire.TOKENS_ENDED)
        )
        assert await _open(b, token) == 401
        assert took < 1.0
        assert (
            await a.put(
                "/api/v1/projects/p",
                json={"metadata": {"name": "p"}, "spec": {"description": "x"}},
                headers=admin_a,
            )
        ).status_code == 200
        await until(
            "b hears the change", lambda: gateway_b.bus.counters.applied.get(wire.CHANGED, 0) > changed_before
        )


async def test_readyz_and_metrics_say_whether_redis_is_there_and_the_catch_up_is_counted(
    tmp_path: Path,
) -> None:
    require_redis()
    proxy = TcpProxy()
    await proxy.start()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'mcpd.db'}"
    try:
        async with replica(tmp_path, "a", database_url, proxy.url, unique_prefix()) as (
            client,
            admin,
            gateway,
        ):
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["redis"] == "ok"
            assert "mcpctl_redis_connected 1.0" in (await client.get("/metrics", headers=admin)).text
            await proxy.stop()
            await until("the bus sees Redis gone", lambda: not gateway.bus.connected)
            ready = await client.get("/readyz")
            assert ready.status_code == 200, "replicas keep serving on their TTLs"
            assert ready.json() == {"status": "ok", "database": "ok", "storage": "ok", "redis": "unreachable"}
            assert "mcpctl_redis_connected 0.0" in (await client.get("/metrics", headers=admin)).text
            await proxy.start()
            await until("the bus is back", lambda: gateway.bus.connected)
            assert (await client.get("/readyz")).json()["redis"] == "ok"
            scraped = (await client.get("/metrics", headers=admin)).text
            assert 'mcpctl_invalidations_applied_total{kind="catch-up"} 1.0' in scraped
    finally:
        await proxy.stop()


async def test_without_redis_readyz_says_nothing_about_it(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'mcpd.db'}")) as (
        app,
        client,
    ):
        assert app.state.mcpd.gateway.bus is None
        assert (await client.get("/readyz")).json() == {"status": "ok", "database": "ok", "storage": "ok"}
