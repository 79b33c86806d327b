"""A failure throttle: at most `burst` charges per key, refilled at `burst / window` per second.

Each key (a client address, an account) holds a leaky bucket: a charge adds one, time drains it at a
steady rate, and a charge that would overflow is refused with the seconds until it would fit. The
table is bounded: past `max_keys` the least recently charged key is dropped (it is the one that has
drained the most), so a flood of random keys costs a fixed amount of memory rather than an unbounded
dict (DESIGN §12: shared capacity is fair). Framework-free and clock-injectable for unit tests.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class _Bucket:
    level: float
    at: float


@dataclass(frozen=True)
class Refusal:
    """Which throttle refused a charge, and how long until it would be accepted."""

    name: str
    retry_after: float


class FailureThrottle:
    """Leaky buckets per key, with a bounded table. `charge` before the work (so that concurrent
    attempts count at once), `refund` what turned out not to be a failure, `clear` a key outright."""

    def __init__(
        self,
        name: str,
        *,
        burst: int,
        window_seconds: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        if burst < 1 or window_seconds <= 0 or max_keys < 1:
            raise ValueError("burst, window_seconds and max_keys must be positive")
        self.name, self.burst, self.max_keys = name, burst, max_keys
        self.rate = burst / window_seconds
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        return max(0.0, bucket.level - (now - bucket.at) * self.rate)

    def refusal(self, key: str) -> Refusal | None:
        """Why one more charge to `key` would be refused now (None: it would be accepted)."""
        over = self._level(key, self._clock()) + 1 - self.burst
        return Refusal(self.name, over / self.rate) if over > 1e-9 else None

    def charge(self, key: str) -> None:
        """Count one attempt against `key` (call `refusal` first; this never refuses)."""
        now = self._clock()
        self._buckets[key] = _Bucket(self._level(key, now) + 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def refund(self, key: str) -> None:
        """Take back one charge (the attempt was not a failure after all)."""
        if key in self._buckets:
            now = self._clock()
            self._buckets[key] = _Bucket(max(0.0, self._level(key, now) - 1), now)

    def clear(self, key: str) -> None:
        self._buckets.pop(key, None)


def charge_all(charges: Sequence[tuple[FailureThrottle, str]]) -> Refusal | None:
    """Charge every (throttle, key) pair, or none of them: the longest refusal if any would refuse,
    so that a refused attempt does not use up another throttle's budget."""
    refusals = [r for throttle, key in charges if (r := throttle.refusal(key)) is not None]
    if refusals:
        return max(refusals, key=lambda r: r.retry_after)
    for throttle, key in charges:
        throttle.charge(key)
    return None
