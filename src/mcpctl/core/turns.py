"""Turns per key: at most `width` holders of a key at once, the others wait in order.

Used where work for one key (a client address) must not all start at once — e.g. token lookups
charged to an address before they run, so that a burst of them waits its turn rather than being
refused on charges still pending. The table holds only keys in use, so it stays as small as the
work in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedTurns:
    def __init__(self, width: int):
        if width < 1:
            raise ValueError("width must be positive")
        self.width = width
        self._gates: dict[str, tuple[asyncio.Semaphore, int]] = {}  # key → (its gate, users)

    def __len__(self) -> int:
        return len(self._gates)

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        gate, users = self._gates.get(key) or (asyncio.Semaphore(self.width), 0)
        self._gates[key] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._gates[key]
            if users == 1:
                del self._gates[key]
            else:
                self._gates[key] = (gate, users - 1)
