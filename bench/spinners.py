"""Idle-priority spinners for `python -m bench.peers --idle-spinners`, a diagnostic: one busy loop per
CPU that runs only when nothing else wants that CPU, so that no CPU halts during the windows.

Why: on this project's VM (KVM, 2 vCPUs) a process that sleeps between events pays for each wake-up
of a halted vCPU in its own CPU time: a loopback send that wakes a sleeping reader costs the writer
~20 µs against ~2.5 µs when the reader is busy, and the woken process runs slower after it. A gateway
paced by a slower upstream sleeps between events (split mode with the http fixture from c=16 on)
where one that is itself the bottleneck (mcp-proxy) never does, so the two meet different machines.
With the spinners every target meets the same never-idle machine; the difference between a run with
and a run without is what halting costs each target (docs/performance.md "Why split http costs more
from c=16"). Not the default run: the issue's figures come from the machine as it is.

Each spinner is `SCHED_IDLE` in a session of its own whose autogroup is niced to 19 (with autogroups,
a policy inside a group does not lower the group's own share), so it takes no measurable time from
the targets; its own CPU is left out of the windows' "other processes" figure."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType


class IdleSpinners(contextlib.AbstractContextManager["IdleSpinners"]):
    def __init__(self, count: int | None = None):
        self.count = count or os.cpu_count() or 1
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.processes)

    def __enter__(self) -> IdleSpinners:
        try:
            for _ in range(self.count):
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                self.processes.append(spinner)
                os.sched_setscheduler(spinner.pid, os.SCHED_IDLE, os.sched_param(0))
                with contextlib.suppress(OSError):  # a kernel without autogroups: SCHED_IDLE alone
                    Path(f"/proc/{spinner.pid}/autogroup").write_text("19")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        for spinner in self.processes:
            spinner.kill()
        for spinner in self.processes:
            spinner.wait()
        self.processes.clear()
