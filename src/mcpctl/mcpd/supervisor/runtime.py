"""A server's running replicas: scaling, picking one per request, and fanning out notifications.

When the replicas that serve change (one comes up, the last one goes down, a restart brings a new
process, the spec changes), the server's lists may have changed: subscribers hear the three
list_changed notifications, as if the upstream had sent them, so lists follow instances (DESIGN §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcpctl.mcpd.supervisor.connection import UpstreamGone
from mcpctl.mcpd.supervisor.instance import Replica, ServerConfig, SupervisorTuning
from mcpctl.mcpd.supervisor.links import Link

logger = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], Awaitable[None]]
_WAITING = ("PENDING", "STARTING")
LIST_CHANGED = (
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
)


class ServerRuntime:
    def __init__(
        self, config: ServerConfig, tuning: SupervisorTuning, spawned: dict[int, Link] | None = None
    ):
        """`spawned`: links already open for some replicas (by index; spawned ahead at mcpd's start)."""
        self.config = config
        self.tuning = tuning
        self._spawned = dict(spawned or {})
        self.replicas: list[Replica] = []
        self.subscribers: set[Subscriber] = set()
        self._changed = asyncio.Event()
        self._turn = itertools.count()
        self._serving: frozenset[tuple[str, object]] = frozenset()  # (replica, started_at) ready now
        self._announcements: set[asyncio.Task[None]] = set()
        self._stopped: list[Replica] | None = None  # once stopping: the replicas being stopped

    @property
    def name(self) -> str:
        return self.config.name

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        serving = frozenset((r.name, r.started_at) for r in self.replicas if r.ready)
        if serving != self._serving:
            self._serving = serving
            self.lists_changed()

    def lists_changed(self) -> None:
        """Tell subscribers (soon, in order) that every list of this server may have changed."""
        task = asyncio.get_running_loop().create_task(self._announce())
        self._announcements.add(task)
        task.add_done_callback(self._announcements.discard)

    async def _announce(self) -> None:
        for method in LIST_CHANGED:
            await self._broadcast({"jsonrpc": "2.0", "method": method})

    async def _broadcast(self, message: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            try:
                await subscriber(message)
            except Exception:  # boundary: one broken subscriber must not starve the others
                logger.exception("a subscriber of server %s failed", self.name)

    def _new_replica(self, index: int) -> Replica:
        replica = Replica(
            self.config,
            index,
            self.tuning,
            on_notification=self._broadcast,
            on_change=self._notify_change,
            spawned=self._spawned.pop(index, None),
        )
        replica.start()
        return replica

    def start(self) -> None:
        self.replicas = [self._new_replica(i) for i in range(self.config.replicas)]

    async def apply(self, config: ServerConfig) -> None:
        """Bring the replicas in line with a changed spec: restart on launch changes, then scale."""
        if self._stopped is not None:
            return  # stopped (a lease ended) while a reconcile was on its way here: start nothing
        old, self.config = self.config, config
        restart = old.launch_fingerprint() != config.launch_fingerprint()
        for replica in self.replicas:
            replica.config = config
            if restart:
                replica.restart("configuration changed", planned=True)
        if config.replicas > len(self.replicas):
            self.replicas += [self._new_replica(i) for i in range(len(self.replicas), config.replicas)]
        elif config.replicas < len(self.replicas):
            surplus = self.replicas[config.replicas :]
            self.replicas = self.replicas[: config.replicas]
            await asyncio.gather(*(r.stop() for r in surplus))
        self._notify_change()
        self.lists_changed()  # e.g. its tools allow/deny list, which no restart announces

    async def stop(self, *, hard: bool = False) -> None:
        """Stop every replica; `hard`: SIGKILL their process groups at once, also those a graceful
        stop in progress is still waiting for."""
        if self._stopped is None:
            self._stopped = []
        replicas, self.replicas = self.replicas, []
        self._stopped += replicas
        await asyncio.gather(*(r.stop(hard=hard) for r in (self._stopped if hard else replicas)))
        self._notify_change()
        await asyncio.gather(*self._announcements, return_exceptions=True)

    async def pick(self, wait_seconds: float) -> Replica:
        """A RUNNING replica with the fewest requests in flight (ties in turn). Waits up to
        `wait_seconds` while replicas are still starting; fails at once when none is on its way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            ready = [r for r in self.replicas if r.ready]
            if ready:
                turn = next(self._turn)
                least = min(r.inflight for r in ready)
                candidates = [r for r in ready if r.inflight == least]
                return candidates[turn % len(candidates)]
            remaining = deadline - loop.time()
            if not any(r.status in _WAITING for r in self.replicas) or remaining <= 0:
                raise UpstreamGone(self.unavailable_reason())
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def unavailable_reason(self) -> str:
        if not self.replicas:
            return f'server "{self.name}" has no instances'
        states = ", ".join(
            f"{r.name} {r.status}" + (f" ({r.reason})" if r.reason else "") for r in self.replicas
        )
        return f'server "{self.name}" has no running instance: {states}'
