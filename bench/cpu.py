"""Where the CPU went during one measurement: the load generator, the server under test (its
processes and their children), and everything else on the machine (from /proc/stat), each in percent
of one core. A busy "other" means the numbers of that level were shared with something else."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import descendants

_TICK = os.sysconf("SC_CLK_TCK")


def _process_seconds(pid: int) -> float:
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
            _process_seconds(self.me),
            sum(_process_seconds(p) for p in self.server),
            _busy_seconds(),
        )

    def stop(self) -> Usage:
        wall = time.perf_counter() - self.wall
        end = self._sample()
        generator, server, busy = (b - a for a, b in zip(self.start, end, strict=True))
        other = max(0.0, busy - generator - server)
        percents = (round(100 * v / wall) for v in (generator, server, other))
        return Usage(*percents, server_seconds=server)
