"""Where the CPU went during one measurement: the load generator, the server under test (its
processes and their children), and everything else on the machine (from /proc/stat), each in percent
of one core. A busy "other" means the numbers of that level were shared with something else."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.processes import descendants

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """The CPU seconds (user and system) process `pid` has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


@dataclass(frozen=True)
class Usage:
    generator: float
    server: float
    other: float
    server_seconds: float  # CPU seconds the server's processes used (all of them, all cores)


class CpuMeter:
    """Start before a measurement, `stop()` after; the server's processes are fixed at start."""

    def __init__(self, *server_pids: int):
        self.server = [p for pid in server_pids for p in (pid, *descendants(pid))]
        self.me = os.getpid()
        self.wall = time.perf_counter()
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        return (
            process_cpu_seconds(self.me),
            sum(process_cpu_seconds(p) for p in self.server),
            _busy_seconds(),
        )

    def stop(self) -> Usage:
        wall = time.perf_counter() - self.wall
        end = self._sample()
        generator, server, busy = (b - a for a, b in zip(self.start, end, strict=True))
        other = max(0.0, busy - generator - server)
        percents = (round(100 * v / wall) for v in (generator, server, other))
        return Usage(*percents, server_seconds=server)


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # children already waited for: e.g. wrk
    return usage.ru_utime + usage.ru_stime


class RoleMeter:
    """CPU seconds per role (e.g. mcplocal, mcpd, upstream: lists of pids, found on entry) over a
    window, plus the load generator (this process and the children it waited for in the window,
    i.e. wrk) and everything else on the machine. A context manager; `seconds` etc. after."""

    def __init__(self, find_roles: Callable[[], dict[str, list[int]]], ignored: Sequence[int] = ()):
        self.find_roles = find_roles  # called on entry: the processes as they are then
        self.ignored = ignored  # processes counted nowhere (bench/spinners.py)
        self.roles: dict[str, list[int]] = {}
        self.seconds: dict[str, float] = {}
        self.generator = self.other = self.wall = 0.0

    def _sample(self) -> tuple[float, float, dict[str, float]]:
        own = process_cpu_seconds(os.getpid()) + _children_seconds()
        roles = {r: sum(map(process_cpu_seconds, pids)) for r, pids in self.roles.items()}
        return own, _busy_seconds() - sum(map(process_cpu_seconds, self.ignored)), roles

    def __enter__(self) -> RoleMeter:
        self.roles = self.find_roles()
        self.started, self.start = time.perf_counter(), self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        own, busy, roles = self._sample()
        self.generator, busy = own - self.start[0], busy - self.start[1]
        self.seconds = {r: roles[r] - self.start[2][r] for r in roles}
        self.other = max(0.0, busy - self.generator - sum(self.seconds.values()))

    def percent(self, seconds: float) -> int:
        """CPU seconds over the window, in percent of one core."""
        return round(100 * seconds / self.wall) if self.wall > 0 else 0
