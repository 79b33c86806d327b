"""A restarted mcpd spawns the stdio servers it ran before it imports the rest of itself, and the
supervisor adopts those processes instead of spawning again (supervisor/prelaunch.py); with
PostgreSQL, where leases decide who runs what, it does not."""

from __future__ import annotations

import re
import stat
import time

import pytest

from tests.e2e.conftest import Cli, Mcpd
from tests.e2e.upstreams import FIXTURE, PYTHON, wait_running
from tests.processes import pid_alive

pytestmark = pytest.mark.e2e

BACKENDS = ("sqlite", "postgresql")  # the plan is for SQLite only (conftest)


def test_a_restart_adopts_the_processes_spawned_ahead(mcpd: Mcpd, admin: Cli) -> None:
    admin.ok("create", "server", "ahead", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    admin.ok("create", "project", "ahead-proj", "--server", "ahead")
    before = wait_running(admin, "ahead", 1)[0]["status"]["pid"]
    plan = mcpd.data_dir / "launch-plan"
    mcpd.restart()
    after = wait_running(admin, "ahead", 1)[0]["status"]["pid"]
    assert after != before and not pid_alive(before)
    spawned = re.findall(r"launch plan: ahead-0 spawned ahead of startup: pid (\d+)", mcpd.log())
    if mcpd.backend == "sqlite":
        assert stat.S_IMODE(plan.stat().st_mode) == 0o600
        assert spawned == [str(after)], "the supervisor adopted the process spawned ahead"
        assert mcpd.log().count("instance ahead-0: started: pid") == 2  # once per start, not twice
    else:
        assert not plan.exists() and spawned == []
    assert admin.ok("call", "-p", "ahead-proj", "ahead__echo", "text=restarted").stdout == "restarted\n"
    admin.ok("delete", "project", "ahead-proj")
    admin.ok("delete", "server", "ahead")


def test_sigterm_while_starting_stops_what_was_spawned_ahead(mcpd: Mcpd, admin: Cli) -> None:
    if mcpd.backend != "sqlite":
        pytest.skip("no launch plan with PostgreSQL")
    admin.ok("create", "server", "early", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    wait_running(admin, "early", 1)
    mcpd.stop()
    seen = len(re.findall(r"launch plan: early-0 spawned ahead of startup: pid (\d+)", mcpd.log()))
    mcpd.launch()
    assert mcpd.process is not None
    deadline = time.monotonic() + 60
    while (
        len(spawned := re.findall(r"launch plan: early-0 spawned ahead of startup: pid (\d+)", mcpd.log()))
        == seen
    ):
        assert time.monotonic() < deadline and mcpd.process.poll() is None, mcpd.log()[-3000:]
        time.sleep(0.01)
    pid = int(spawned[-1])
    before = len(mcpd.log())
    mcpd.stop()  # SIGTERM while it imports the rest of itself: a clean exit, nothing left behind
    said = mcpd.log()[before:]
    # not the signal's default action (which would leave the children's groups to the next start)
    assert "stopped (SIGTERM) while starting" in said or "Finished server process" in said, said
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid}, spawned ahead, outlived mcpd"
        time.sleep(0.05)
    mcpd.start()
    admin.ok("delete", "server", "early")
