"""Argon2 work with a concurrency cap (DESIGN §12).

Each Argon2id verification holds `MCPD_PASSWORD_HASH_MEMORY_KIB` (64 MiB by default) and several
threads for a good fraction of a second: forty parallel logins once took mcpd from 123 MB to 1.5 GB
and every tool call from milliseconds to half a second. At most `concurrency` hashes run at once
(default 1: one hash already runs 4 lanes in parallel); a bounded number of callers wait a bounded
time for a slot, and anyone beyond that gets 429 with `Retry-After` at once rather than a share of
an exhausted machine. The hashes run in threads of their own at the lowest CPU priority (Linux: the
nice value is per thread, and Argon2's lane threads inherit it), so that a login flood takes only
the CPU that serving requests leaves over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

from mcpctl.core.errors import TooManyRequestsError

T = TypeVar("T")

BUSY_RETRY_AFTER_SECONDS = 1.0


class HashingPool:
    """Runs Argon2 calls in worker threads, `concurrency` at a time, with at most `max_waiting`
    callers queued for at most `max_wait_seconds` each."""

    def __init__(self, *, concurrency: int, max_waiting: int, max_wait_seconds: float):
        self._slots = anyio.CapacityLimiter(concurrency)
        self._max_waiting, self._max_wait = max_waiting, max_wait_seconds
        self._waiting = 0
        self._threads = ThreadPoolExecutor(concurrency, "argon2", initializer=_lowest_priority)

    def close(self) -> None:
        """Let the worker threads go (a hash still running finishes first, in the background)."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        """Hashes running now."""
        return int(self._slots.borrowed_tokens)

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now."""
        return self._waiting

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a worker thread once a slot is free; TooManyRequestsError when the queue is
        full or the slot does not come within the bounded wait."""
        borrower = object()  # a slot per call, not per task: one login may hash twice in a row
        acquired = False
        if self._slots.available_tokens >= 1:
            self._slots.acquire_on_behalf_of_nowait(borrower)
            acquired = True
        elif self._waiting < self._max_waiting:
            self._waiting += 1
            try:
                with anyio.move_on_after(self._max_wait):
                    await self._slots.acquire_on_behalf_of(borrower)
                    acquired = True
            finally:
                self._waiting -= 1
        if not acquired:
            raise _busy()
        try:
            return await asyncio.wrap_future(self._threads.submit(fn, *args))
        finally:
            self._slots.release_on_behalf_of(borrower)


def _lowest_priority() -> None:
    """Make this worker thread (and the threads it starts) yield the CPU to everything else."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: full priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _busy() -> TooManyRequestsError:
    return TooManyRequestsError(
        "too many logins are being checked right now; try again shortly",
        retry_after=BUSY_RETRY_AFTER_SECONDS,
        details={"limit": "password_hashing"},
    )
