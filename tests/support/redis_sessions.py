"""The Redis the session-store tests use (tests/support/redis.py: 127.0.0.1:6379; a skip on a laptop
without it, a failure in CI). Every test gets its own key prefix and its keys are removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tests.support.redis import REDIS_URL, require_redis
from tests.support.redis import unique_prefix as fresh_prefix

__all__ = ["REDIS_URL", "keys", "redis_url", "ttl_of", "unique_prefix"]


def redis_url() -> str:
    return require_redis()


def _client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


@contextmanager
def unique_prefix() -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted at the end."""
    prefix = fresh_prefix()
    try:
        yield prefix
    finally:
        with _client() as client:
            for key in client.scan_iter(f"{prefix}:*", count=100):
                client.delete(key)


def keys(prefix: str) -> list[str]:
    with _client() as client:
        return sorted(k.decode() for k in client.scan_iter(f"{prefix}:*", count=100))


def ttl_of(key: str) -> int:
    with _client() as client:
        return int(client.ttl(key))
