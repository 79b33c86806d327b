"""The process groups this mcpd started, on disk, so that the next mcpd can end what a killed one left.

Each stdio instance runs in its own process group (and session), which mcpd kills and reaps on stop.
After `kill -9` of mcpd nobody does: a server that ignores its closed stdin, or the grandchildren of
one that exits, run on forever. So every group mcpd starts is recorded in `<dataDir>/process-groups.json`
(written atomically, 0600) until it has been killed, and a starting mcpd kills the recorded groups
that are still there (DESIGN §6: no orphan survives mcpd).

A pid is reused once its process is gone, so a group is killed only when its identity is certain: the
same boot, and every process in it in the session the leader created (sid == pgid, which only a
process that called setsid with that pid can have) and started no earlier than the recorded leader;
if the leader itself is alive its start time must be the recorded one. The file also names the mcpd
that wrote it: while that mcpd still runs (two mcpds on one data dir), its groups are left alone.
Linux only (/proc); elsewhere nothing is recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from mcpctl.mcpd.files import write_private_file

logger = logging.getLogger(__name__)

FILE_NAME = "process-groups.json"
_PROC = Path("/proc")
_BOOT_ID = _PROC / "sys/kernel/random/boot_id"


@dataclass(frozen=True)
class GroupRecord:
    """One process group: its id (the leader's pid), the leader's start time in clock ticks after
    boot (/proc/PID/stat field 22), and the boot it belongs to."""

    pgid: int
    start_ticks: int
    boot_id: str


@dataclass(frozen=True)
class _Owner:
    """The mcpd that wrote the file: pid, start time, boot."""

    pid: int
    start_ticks: int
    boot_id: str


@dataclass(frozen=True)
class _Proc:
    pid: int
    pgid: int
    sid: int
    start_ticks: int


def _read_proc(pid: int | str) -> _Proc | None:
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command: state ppid pgrp session tty tpgid flags … starttime (field 22 overall)
    return _Proc(int(pid), int(fields[2]), int(fields[3]), int(fields[19]))


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return None


def _members(pgid: int) -> list[_Proc]:
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (proc := _read_proc(entry.name)) is not None and proc.pgid == pgid:
            found.append(proc)
    return found


def _is_ours(record: GroupRecord, members: list[_Proc], boot_id: str | None) -> bool:
    if record.boot_id != boot_id:
        return False
    for proc in members:
        if proc.sid != record.pgid or proc.start_ticks < record.start_ticks:
            return False
        if proc.pid == record.pgid and proc.start_ticks != record.start_ticks:
            return False  # the leader's pid now belongs to another process
    return True


class GroupLedger:
    """The file of recorded process groups of one data dir."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / FILE_NAME
        self._records: dict[int, GroupRecord] = {}
        self._boot_id = _boot_id()
        me = _read_proc(os.getpid())
        self._owner = _Owner(os.getpid(), me.start_ticks if me else 0, self._boot_id or "")
        self._reaped = False

    def _save(self) -> None:
        body = {"owner": asdict(self._owner), "groups": [asdict(r) for r in self._records.values()]}
        try:
            write_private_file(self.path, json.dumps(body))
        except OSError:
            logger.warning("could not record process groups in %s", self.path, exc_info=True)

    def add(self, pid: int) -> None:
        """Record the group led by `pid` (a child started with its own session)."""
        proc = _read_proc(pid)
        if proc is None or self._boot_id is None:
            return  # already gone, or no /proc: nothing that could be identified later
        self._records[pid] = GroupRecord(pid, proc.start_ticks, self._boot_id)
        self._save()

    def remove(self, pid: int) -> None:
        """Forget the group led by `pid`: it has been killed."""
        if self._records.pop(pid, None) is not None:
            self._save()

    def _load(self) -> tuple[_Owner | None, list[GroupRecord]]:
        """The mcpd that wrote the file, and the groups it recorded."""
        try:
            raw = json.loads(self.path.read_text())
            owner = raw["owner"]
            groups = [
                GroupRecord(int(r["pgid"]), int(r["start_ticks"]), str(r["boot_id"])) for r in raw["groups"]
            ]
            return _Owner(int(owner["pid"]), int(owner["start_ticks"]), str(owner["boot_id"])), groups
        except FileNotFoundError:
            return None, []
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable %s", self.path, exc_info=True)
            return None, []

    def _alive_elsewhere(self, owner: _Owner) -> bool:
        """Whether the mcpd that wrote the file is another process, still running."""
        if owner.pid == os.getpid():
            return False
        proc = _read_proc(owner.pid)
        return proc is not None and proc.start_ticks == owner.start_ticks and owner.boot_id == self._boot_id

    def reap_leftovers(self) -> list[int]:
        """Kill the recorded groups a previous mcpd of this data dir left running; their pgids. Once
        per ledger: after that, the recorded groups are this mcpd's own (spawned ahead, prelaunch.py)."""
        killed: list[int] = []
        if self._reaped:
            return killed
        self._reaped = True
        owner, records = self._load()
        if owner is not None and self._alive_elsewhere(owner):
            logger.warning(
                "%s belongs to mcpd pid %d, which is running: its process groups are left alone "
                "(run one mcpd per data dir)",
                self.path,
                owner.pid,
            )
            return killed
        for record in records:
            members = _members(record.pgid)
            if not members:
                continue
            if not _is_ours(record, members, self._boot_id):
                logger.info("process group %d is no longer one mcpd started: left alone", record.pgid)
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pgid, signal.SIGKILL)
                killed.append(record.pgid)
        if killed:
            logger.warning(
                "killed %d process group(s) left by a previous mcpd: %s",
                len(killed),
                ", ".join(map(str, killed)),
            )
        self._records.clear()
        self._save()
        return killed
