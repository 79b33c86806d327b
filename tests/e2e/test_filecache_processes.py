"""Two real processes share one pipeline cache directory under load (DESIGN §10: several processes
and replicas share it): no process ever reads a torn or wrong value, and the entries stay within the
size bound whenever no process holds the directory's lock (sampled holding it, as an evictor would)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.filecache_worker import MAX_VALUE, TASKS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 3_000_000
WORKERS = 2
OPS = 400
DEADLINE = 120.0
WORKER = (sys.executable, "-m", "tests.support.filecache_worker")


def sample(directory: Path) -> tuple[int, int]:
    """(bytes of entries, number of temp files), counted holding the cache's lock."""
    lock = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries, temps = 0, 0
        for path in directory.glob("??/*"):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # a temp file renamed meanwhile (renames into place need the lock; temps don't)
            if path.name.startswith(".tmp-"):
                temps += 1
            else:
                entries += size
        return entries, temps
    finally:
        os.close(lock)


def test_two_processes_sharing_a_cache_never_read_a_wrong_value_and_stay_bounded(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    workers = [
        subprocess.Popen(
            [*WORKER, str(directory), str(MAX_BYTES), f"w{i}", str(OPS), str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    samples = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while any(w.poll() is None for w in workers):
            assert time.monotonic() < deadline, "the workers did not finish in time"
            entries, temps = sample(directory)
            assert entries <= MAX_BYTES
            assert temps <= WORKERS * TASKS, "more temp files than puts in flight"
            samples += 1
            time.sleep(0.02)
        outputs = [w.communicate(timeout=10)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    counts = [json.loads(out) for out in outputs]
    assert [w.returncode for w in workers] == [0] * WORKERS, counts
    assert all(c["wrong"] == 0 and c["ops"] == OPS for c in counts)
    assert all(c["hits"] > 0 for c in counts), "nothing was ever read back: the test proved nothing"
    assert samples >= 3, "the run was over before it could be watched"
    entries, temps = sample(directory)
    assert entries <= MAX_BYTES and temps == 0
    assert entries > MAX_BYTES - 2 * MAX_VALUE, "the cache was not filled: eviction was never exercised"
    ledger_total = int((directory / ".ledger").read_text().split()[0])
    assert ledger_total == entries, "the shared ledger lost track of the directory"
