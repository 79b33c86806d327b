"""`make run` as the README starts it, for tests: mcpd with the defaults of a first start, on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Mcpd
from tests.e2e.upstreams import ROOT, upstream_env, wait_for
from tests.processes import clean_env


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def make_run(home: Path, log: Path, **env: str) -> Iterator[Mcpd]:
    """`make run` in the checkout with HOME=home, so mcpd starts on a fresh data dir in its default place
    (home/.local/share/mcpctl), on a free port (MCPD_PORT), with the e2e daemons' quick probes and stops;
    `env` adds to or overrides the environment (PATH is this one unless given).
    Stopped with SIGTERM to its whole process group, which must then be empty. Skipped when `make run`
    would install first (run `make test` or `make run` once): installing is not what is tested here."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    plan = subprocess.run(
        [make, "-s", "-n", "-C", str(ROOT), "run"], capture_output=True, text=True, check=True
    )
    commands = plan.stdout.strip().splitlines()  # one command: mcpd (with PATH set for its servers)
    if len(commands) != 1 or commands[0].split()[-1].rsplit("/", 1)[-1] != "mcpd":
        pytest.skip(f"make run would do more than start mcpd (run `make test` first):\n{plan.stdout}")
    home.mkdir(parents=True, exist_ok=True)
    daemon = Mcpd("sqlite", data_dir=home / ".local" / "share" / "mcpctl", stderr_path=log)
    quick = {key: value for key, value in upstream_env().items() if key != "PATH"}  # probes, stops
    full_env = {**clean_env(), **quick, "HOME": str(home), "MCPD_PORT": str(daemon.port), **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [make, "-s", "-C", str(ROOT), "run"], env=full_env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for("make run to serve /readyz", lambda: _ready(daemon.url), timeout=30)
            yield daemon
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
                wait_for("mcpd and its children to exit", lambda: _group_gone(process.pid), timeout=15)
            finally:
                if not _group_gone(process.pid):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
