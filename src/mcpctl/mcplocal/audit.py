"""AuditEvents off the hot path: a bounded in-memory queue flushed in batches by one task.

A request only appends to the queue (and, with a spool, one line to a local file before its answer
goes out: `spool.py`; the spool's segments are deleted once their events are stored, and what a
crash left is stored again at start). The flusher writes a batch every `flush_seconds` (or sooner
when a batch is full); a failed write is retried with the same events. Nothing is dropped silently:
when the queue is full, or the store still fails at shutdown, the events are counted (`dropped`)
and a warning says how many and why. `close()` flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from mcpctl.mcplocal.ports import AuditRecord
from mcpctl.mcplocal.spool import AuditSpool

logger = logging.getLogger(__name__)

Store = Callable[[Sequence[AuditRecord]], Awaitable[None]]
BATCH = 500


class AuditQueue:
    def __init__(
        self,
        store: Store,
        *,
        flush_seconds: float = 0.5,
        max_queue: int = 100_000,
        spool: AuditSpool | None = None,
    ):
        """`store` must ignore an event whose `event_id` it already holds (a replayed spool)."""
        self.store, self.flush_seconds, self.max_queue = store, flush_seconds, max_queue
        self.spool = spool
        self.pending: deque[AuditRecord] = deque()
        self.dropped = 0
        self.written = 0
        self.unspooled = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.spool is not None:
            leftover = self.spool.open()
            if leftover:
                logger.warning("audit: storing %d event(s) spooled by a previous run", len(leftover))
                self.pending.extend(leftover)
                self._wake.set()
        self._task = asyncio.create_task(self._run(), name="audit-flusher")

    def put(self, record: AuditRecord) -> None:
        if len(self.pending) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "audit: queue full (%d events); %d event(s) dropped so far", self.max_queue, self.dropped
                )
            return
        if self.spool is not None:
            try:
                self.spool.append(record)
            except OSError:
                self.unspooled += 1
                if self.unspooled == 1 or self.unspooled % 1000 == 0:
                    logger.exception(
                        "audit: spooling failed; %d event(s) held in memory only", self.unspooled
                    )
        self.pending.append(record)
        if len(self.pending) >= BATCH:
            self._wake.set()

    async def durable(self) -> None:
        """Returns once the events queued so far are on disk (see `AuditSpool.durable`)."""
        if self.spool is not None:
            await self.spool.durable()

    async def flush(self) -> None:
        """Store every event queued now; then the spool segments that hold them are deleted."""
        if not self.pending:
            return
        if self.spool is not None:
            await self.spool.seal()
        remaining = len(self.pending)
        while remaining:
            batch = [self.pending[i] for i in range(min(BATCH, remaining))]
            await self.store(batch)
            for _ in batch:
                self.pending.popleft()
            self.written += len(batch)
            remaining -= len(batch)
        if self.spool is not None:
            self.spool.committed()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # boundary: the store is down; the events stay queued and are retried
                logger.exception("audit: writing %d event(s) failed; retrying", len(self.pending))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            if self.spool is None:
                self.dropped += len(self.pending)
                logger.exception("audit: %d event(s) could not be written at shutdown", len(self.pending))
            else:
                logger.exception(
                    "audit: %d event(s) not written at shutdown; kept in the spool for the next start",
                    len(self.pending),
                )
            self.pending.clear()
        if self.spool is not None:
            await self.spool.close()
