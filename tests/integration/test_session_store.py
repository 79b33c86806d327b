"""The session store (DESIGN §11) against a real Redis: what a replica needs to take a legacy session
over is written, read back and expires with the session; a deleted session is gone for every replica;
a record holds no token; Redis unavailable is one exception, raised quickly."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
import redis

from mcpctl.mcplocal.session_store import (
    SessionRecord,
    SessionState,
    SessionStore,
    SessionStoreUnavailable,
    session_store_for,
)
from mcpctl.mcplocal.settings import GatewaySettings
from tests.support.redis_sessions import REDIS_URL, redis_url, ttl_of, unique_prefix

pytestmark = pytest.mark.anyio

TOKEN = "mcpctl_pat_not_a_real_token_0123456789"
CLIENT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"sampling": {}},
    "clientInfo": {"name": "c", "version": "1"},
}


def record(**state: object) -> SessionRecord:
    sha = hashlib.sha256(TOKEN.encode()).hexdigest()
    return SessionRecord(sha, "p1", "2025-11-25", CLIENT, SessionState(**state))  # type: ignore[arg-type]


@pytest.fixture
async def store() -> AsyncIterator[SessionStore]:
    url = redis_url()
    with unique_prefix() as prefix:
        store = SessionStore(url, prefix, ttl_seconds=60)
        try:
            yield store
        finally:
            await store.aclose()


async def test_a_record_reads_back_as_it_was_written(store: SessionStore) -> None:
    sid = uuid.uuid4().hex
    written = record(level="error", revealed=True, subscriptions=("fixture://a", "fixture://b"))
    await store.save(sid, written)
    assert await store.load(sid) == written
    assert await store.load(uuid.uuid4().hex) is None


async def test_a_record_holds_the_tokens_hash_never_the_token(store: SessionStore) -> None:
    sid = uuid.uuid4().hex
    await store.save(sid, record())
    with redis.Redis.from_url(REDIS_URL) as client:
        raw = client.get(f"{store.prefix}:session:{sid}")
    assert raw is not None and TOKEN.encode() not in raw
    assert hashlib.sha256(TOKEN.encode()).hexdigest().encode() in raw


async def test_a_record_expires_with_the_session_and_touching_it_pushes_the_expiry_back(
    store: SessionStore,
) -> None:
    sid = uuid.uuid4().hex
    key = f"{store.prefix}:session:{sid}"
    await store.save(sid, record())
    assert 55 <= ttl_of(key) <= 60
    with redis.Redis.from_url(REDIS_URL) as client:
        client.expire(key, 3)
    assert ttl_of(key) <= 3
    assert await store.touch(sid) == record()
    assert ttl_of(key) >= 55


async def test_a_deleted_session_is_gone_for_every_replica(store: SessionStore) -> None:
    sid = uuid.uuid4().hex
    other = SessionStore(REDIS_URL, store.prefix, ttl_seconds=60)  # another replica's store
    try:
        await store.save(sid, record())
        assert await other.load(sid) == record()
        await other.delete(sid)
        assert await store.load(sid) is None
        assert await store.touch(sid) is None
    finally:
        await other.aclose()


async def test_a_malformed_record_is_no_record(store: SessionStore) -> None:
    sid = uuid.uuid4().hex
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(f"{store.prefix}:session:{sid}", b'{"token_sha": 1}', ex=60)
    assert await store.load(sid) is None


async def test_an_unreachable_redis_is_one_exception_raised_quickly() -> None:
    store = SessionStore("redis://127.0.0.1:1/0", "x", ttl_seconds=60, timeout_seconds=0.5)
    started = time.monotonic()
    try:
        with anyio.fail_after(10):
            for attempt in (store.save(uuid.uuid4().hex, record()), store.load(uuid.uuid4().hex)):
                with pytest.raises(SessionStoreUnavailable):
                    await attempt
    finally:
        await store.aclose()
    assert time.monotonic() - started < 5


def test_without_a_redis_url_there_is_no_store() -> None:
    assert session_store_for(GatewaySettings()) is None
    store = session_store_for(GatewaySettings(redis_url="redis://127.0.0.1:6379/0", redis_channel="c"))
    assert store is not None and store.prefix == "c" and store.ttl == 1800
