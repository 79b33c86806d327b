"""Turns per key: at most `width` holders of a key at once, the others wait in order.

Used where work for one key must not all start at once: a token opens its sessions one at a time
(`mcplocal/http.py`), and mcpd's link runs a few token lookups per client address at a time, each
charged to the address before it runs, so that a burst waits its turn rather than being refused on
charges still pending (`mcpd/link.py`). The table holds only keys in use, so it stays as small as
the work in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


class KeyedTurns:
    def __init__(self, width: int):
        if width < 1:
            raise ValueError("width must be positive")
        self.width = width
        self._gates: dict[str, tuple[anyio.Semaphore, int]] = {}  # key → (its gate, users)

    def __len__(self) -> int:
        return len(self._gates)

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        gate, users = self._gates.get(key) or (anyio.Semaphore(self.width), 0)
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
