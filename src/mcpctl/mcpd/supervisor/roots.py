"""Whose roots a shared upstream instance sees.

An upstream keeps ONE list of roots per connection, but mcpd's connection to an instance carries
many callers, each with roots of its own. `RootsGate` admits requests by roots so that every
request in flight was sent while the upstream held its own caller's roots: requests whose caller
has the roots the upstream was last told run side by side; a caller with other roots waits, in
arrival order, until those have finished, then the connection switches the upstream (tells it
`notifications/roots/list_changed` and answers its re-read with the new roots) before forwarding.
It only keeps state; the connection does the talking. Nothing here is used until the upstream has
asked `roots/list` at least once: a server that never asks costs nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

Roots = list[dict[str, Any]]


def roots_key(roots: Roots) -> str:
    """Roots compare by content (uri, name, _meta), in the order the client gave them."""
    return json.dumps(roots, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def roots_of(answer: dict[str, Any]) -> Roots:
    """The roots in a client's answer to `roots/list`; none when it answered an error (a client
    without the roots capability) or something that is not a ListRootsResult."""
    result = answer.get("result")
    roots = result.get("roots") if isinstance(result, dict) else None
    if not isinstance(roots, list):
        return []
    return [root for root in roots if isinstance(root, dict) and isinstance(root.get("uri"), str)]


class RootsGate:
    """Admission of one connection's requests by their caller's roots (see the module docstring)."""

    def __init__(self) -> None:
        self.aware = False  # the upstream asked roots/list at least once
        self.standing = False  # ... and once outside any caller's request (it holds roots between them)
        # It re-reads roots when told list_changed; False once it let a switch go unanswered, after
        # which switches only notify it (it asks again when it wants to, and gets the current roots).
        self.follows_changes = True
        self.told: Roots | None = None  # what the upstream was last given (None: nothing yet)
        self.target: Roots | None = None  # the roots a switch under way gives it
        self.reread = asyncio.Event()  # set when the upstream read `target`
        self._told_key: str | None = None
        self._holders = 0  # admitted requests in flight: all rely on `told`
        self._line: deque[object] = deque()
        self._sleepers: list[asyncio.Future[None]] = []

    @property
    def busy(self) -> bool:
        """Admitted requests rely on the roots the upstream holds, or a switch is under way."""
        return self._holders > 0 or self.target is not None

    def current(self) -> Roots | None:
        """What to answer the upstream's `roots/list` with now (None: nothing is known yet)."""
        self.aware = True
        return self.target if self.target is not None else self.told

    def given(self, roots: Roots) -> None:
        """The upstream was answered `roots` outside a switch (its first read, relayed to a caller)."""
        self.told, self._told_key = roots, roots_key(roots)

    async def enter(self, roots: Roots) -> bool:
        """Wait for this request's turn. True: the caller must switch the upstream to `roots` now and
        then call `switched()`; either way `leave()` once the request is over."""
        key = roots_key(roots)
        ticket = object()
        self._line.append(ticket)
        try:
            while not (
                self._line[0] is ticket
                and self.target is None
                and (key == self._told_key or self._holders == 0)
            ):
                sleeper = asyncio.get_running_loop().create_future()
                self._sleepers.append(sleeper)
                await sleeper
        finally:
            self._line.remove(ticket)
            self._wake()
        self._holders += 1
        if key == self._told_key:
            return False
        self.target, self.reread = roots, asyncio.Event()
        return True

    def switched(self, settled: bool = True) -> None:
        """The switch is over: the upstream re-read the roots, or was told and did not ask. Not
        `settled` (it failed part-way): the upstream may hold either list, so every next request
        switches again; its reads meanwhile get the newer list."""
        if self.target is not None:
            self.given(self.target)
            if not settled:
                self._told_key = None
            self.target = None
        self._wake()

    def leave(self) -> None:
        self._holders -= 1
        self._wake()

    def _wake(self) -> None:
        sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            if not sleeper.done():
                sleeper.set_result(None)
