"""A small async cache with positive and negative TTLs and single-flight fetches.

Used for discovery (each upstream's tools/resources/prompts) and token introspection: a value is
kept `positive` seconds; a failure is remembered `negative` seconds (the same error is raised again
without asking), so a dead upstream costs one timeout and then nothing until the negative TTL ends.
Concurrent misses for one key share one fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    expires: float
    value: V | None = None
    error: BaseException | None = None


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A fetch's failure is raised to its waiters; when they all went away it is still retrieved."""
    if not task.cancelled():
        task.exception()


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        positive: float,
        negative: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        remember: Callable[[Exception], bool] = lambda _: True,
        lifetime: Callable[[V], float | None] = lambda _: None,
    ):
        """`remember` says which failures are cached for the negative TTL (the others are raised
        to every waiter of that fetch and then forgotten, e.g. "the control plane is down").
        `lifetime` says how many seconds a value stays true (None: no limit of its own), so a value
        is never kept past it: a token's introspection is not kept past its expiry."""
        self.positive, self.negative, self.max_entries, self.clock = positive, negative, max_entries, clock
        self.remember, self.lifetime = remember, lifetime
        self._entries: dict[K, _Entry[V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self.clock():
            if entry.error is not None:
                raise entry.error
            return entry.value  # type: ignore[return-value]
        task = self._inflight.get(key)
        if task is None:
            # The fetch runs as a task of its own, so a caller that goes away (a client disconnect
            # cancels its request) cancels only its own wait, never the fetch others share.
            task = asyncio.ensure_future(self._fetch(key, fetch))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _fetch(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        generation = self._generation
        try:
            value = await fetch()
        except Exception as exc:
            if generation == self._generation and self.remember(exc):  # not invalidated meanwhile
                self._store(key, _Entry(self.clock() + self.negative, error=exc))
            raise
        else:
            if generation == self._generation:
                lifetime = self.lifetime(value)
                keep = self.positive if lifetime is None else min(self.positive, lifetime)
                if keep > 0:
                    self._store(key, _Entry(self.clock() + keep, value=value))
            return value
        finally:
            self._inflight.pop(key, None)

    def _store(self, key: K, entry: _Entry[V]) -> None:
        self._entries[key] = entry
        if len(self._entries) > self.max_entries:
            now = self.clock()
            for stale in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[stale]
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]  # oldest inserted first

    def peek(self, key: K) -> V | None:
        """The fresh value held for `key`, without fetching (None when absent, stale or a failure)."""
        entry = self._entries.get(key)
        if entry is None or entry.error is not None or entry.expires <= self.clock():
            return None
        return entry.value

    def invalidate(self, key: K | None = None) -> None:
        """Forget one key (or everything); a fetch in flight is not stored when it lands."""
        self._generation += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
