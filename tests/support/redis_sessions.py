"""The Redis the session-store tests use: `MCPCTL_TEST_REDIS_URL` (default 127.0.0.1:6379). Missing
Redis is a skip on a laptop and a failure in CI, as for PostgreSQL. Every test gets its own key
prefix and its keys are removed afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("MCPCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_url() -> str:
    """The test Redis, answering; skip (or, in CI, fail) when it does not."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except (RedisError, OSError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable in CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    return REDIS_URL


@contextmanager
def unique_prefix() -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted at the end."""
    prefix = f"mcpctl-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
            for key in client.scan_iter(f"{prefix}:*", count=100):
                client.delete(key)


def keys(prefix: str) -> list[str]:
    with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
        return sorted(k.decode() for k in client.scan_iter(f"{prefix}:*", count=100))


def ttl_of(key: str) -> int:
    with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
        return int(client.ttl(key))
