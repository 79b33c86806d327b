"""The local append-only spool of AuditEvents (DESIGN §5: "an answered call's event is spooled
locally before the answer goes out, so it survives a crash of the process and is stored on restart").

Each event is one JSON line appended with a single `os.write` to the open segment file while the
request is still being served: once `write` returns the bytes are in the kernel's page cache, so a
crash of the process (kill -9) cannot lose them. (`fdatasync` runs when a segment is sealed, off the
hot path, in a thread: a crash of the whole machine may lose the last flush interval — unless answers
wait for `durable()`, a group commit: one fdatasync for every answer waiting meanwhile.)

The batch writer seals the open segment (new events go to a fresh one), stores every event that was
queued at that moment, and only then deletes the sealed segments. On start the segments left over
by a crash are read back and stored again; each event carries its own id (the audit table's primary
key), so a replay after a commit whose segment was not yet deleted stores nothing twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from mcpctl.core import jsontext
from mcpctl.core.policy import Principal
from mcpctl.mcplocal.ports import AuditRecord

logger = logging.getLogger(__name__)

_SUFFIX = ".jsonl"


def _retrieve(task: asyncio.Future[None]) -> None:
    """A sync's failure is raised to its waiters; when they all went away it is still retrieved."""
    if not task.cancelled():
        task.exception()


def encode(record: AuditRecord) -> bytes:
    """One spool line: the record's own fields and who did it (never a secret: the token's hash).
    Written out field by field and encoded by core.jsontext (non-ASCII as UTF-8; `decode` reads
    both): a quarter of the cost of `fields()` and `json.dumps`, on every call's way out."""
    principal = record.principal
    body: dict[str, Any] = {
        "kind": record.kind,
        "principal": {
            "kind": principal.kind,
            "email": principal.email,
            "token_name": principal.token_name,
            "token_sha": principal.token_sha,
            "project": principal.project,
            "owner": principal.owner,
        },
        "project": record.project,
        "server": record.server,
        "target": record.target,
        "outcome": record.outcome,
        "duration_ms": record.duration_ms,
        "session_id": record.session_id,
        "request_id": record.request_id,
        "client_addr": record.client_addr,
        "event_id": record.event_id,
        "time": record.time.isoformat(),
    }
    return jsontext.dumps(body) + b"\n"


def decode(line: bytes) -> AuditRecord:
    body = json.loads(line)
    body["principal"] = Principal(**body["principal"])
    body["time"] = datetime.fromisoformat(body["time"])
    return AuditRecord(**body)


class AuditSpool:
    """Segment files `audit-*.jsonl` in one directory (0700), owned by one process."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._fd: int | None = None
        self._current: Path | None = None
        self._sealed: list[Path] = []
        self._names = itertools.count()
        self.appended = 0  # events written since start
        self.synced = 0  # of which known to be on disk
        self._lock = asyncio.Lock()  # one fdatasync/close of a segment at a time
        self._syncing: asyncio.Future[None] | None = None

    def open(self) -> list[AuditRecord]:
        """Start a fresh segment; return the events a previous run left (now sealed: they are
        deleted with the next commit). A torn last line (the crash hit mid-write) is skipped."""
        leftover: list[AuditRecord] = []
        for path in sorted(self.directory.glob(f"audit-*{_SUFFIX}")):
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    leftover.append(decode(line))
                except (ValueError, TypeError, KeyError):
                    logger.warning("audit spool: %s line %d is unreadable; skipped", path.name, number)
            self._sealed.append(path)
        self._start_segment()
        return leftover

    def _start_segment(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._current = self.directory / f"audit-{time.time_ns():020d}-{next(self._names):06d}{_SUFFIX}"
        self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def append(self, record: AuditRecord) -> None:
        """Write one event before its answer goes out (OSError when the disk refuses)."""
        if self._fd is None:
            raise OSError("the audit spool is not open")
        os.write(self._fd, encode(record))
        self.appended += 1

    async def seal(self) -> None:
        """Everything appended so far belongs to sealed segments, synced to disk; later events go
        to a new segment (also after a failure: a spool that could not open one tries again here)."""
        async with self._lock:
            fd, appended, self._fd = self._fd, self.appended, None
            if fd is not None and self._current is not None:
                self._sealed.append(self._current)
            try:
                self._start_segment()
            finally:
                if fd is not None:
                    try:
                        await asyncio.to_thread(os.fdatasync, fd)
                        self.synced = max(self.synced, appended)
                    finally:
                        os.close(fd)

    async def durable(self) -> None:
        """Returns once every event appended so far is on disk: one fdatasync serves every caller
        waiting meanwhile (group commit). A disk that refuses is logged, not raised: the events are
        still written and queued."""
        target = self.appended
        while self.synced < target:
            syncing = self._syncing
            if syncing is None or syncing.done():  # (a done one is never awaited again: no busy loop)
                syncing = self._syncing = asyncio.ensure_future(self._sync())
                syncing.add_done_callback(_retrieve)
            try:
                await asyncio.shield(syncing)
            except OSError:
                logger.exception("audit spool: fdatasync failed; answering without it")
                return

    async def _sync(self) -> None:
        async with self._lock:  # earlier events are in sealed segments, synced before the lock was let go
            fd, appended = self._fd, self.appended
            if fd is not None:
                await asyncio.to_thread(os.fdatasync, fd)
            self.synced = max(self.synced, appended)

    def committed(self) -> None:
        """The events of every sealed segment are stored: delete those segments."""
        for path in self._sealed:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                logger.exception("audit spool: could not delete %s", path.name)
        self._sealed.clear()

    async def close(self) -> None:
        """Close the open segment (kept when it holds events; removed when empty)."""
        async with self._lock:
            fd, self._fd = self._fd, None
            if fd is None or self._current is None:
                return
            os.close(fd)
            if self._current.stat().st_size == 0:
                self._current.unlink(missing_ok=True)
