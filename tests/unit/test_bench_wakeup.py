"""bench/wakeup.py, small: the echo server answers every round trip, its CPU is read, and it is gone
afterwards (no process outlives a level)."""

from __future__ import annotations

import os

import pytest
from bench import wakeup


@pytest.mark.parametrize("concurrency", [1, 4])
def test_measures_the_servers_cpu_per_round_trip_and_ends_it(
    concurrency: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    start = wakeup._start_server

    def recording() -> tuple[int, int]:
        pid, port = start()
        started.append(pid)
        return pid, port

    monkeypatch.setattr(wakeup, "_start_server", recording)
    micros, rate, done = wakeup.measure(concurrency, round_trips=400, seconds=10)
    assert done == 400 and rate > 0 and micros >= 0
    (pid,) = started
    with pytest.raises(ChildProcessError):  # reaped: nothing left to wait for
        os.waitpid(pid, os.WNOHANG)
