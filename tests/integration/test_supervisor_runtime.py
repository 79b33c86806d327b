"""The supervisor's runtime against real child processes that misbehave on purpose
(tests/fixtures/raw_mcp_server.py): dead children whose grandchildren hold the pipe, malformed
messages, closed or unread stdin, SIGTERM ignored, and stops racing probes. Each case once hung,
leaked a process or stopped supervising for good; none may now."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from mcpctl.mcpd.supervisor.connection import UpstreamGone, UpstreamTimeout
from mcpctl.mcpd.supervisor.instance import HealthConfig, Replica, ServerConfig, SupervisorTuning
from mcpctl.mcpd.supervisor.runtime import ServerRuntime
from tests.processes import group_members, pid_alive

pytestmark = pytest.mark.anyio

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw_mcp_server.py"
FAST = SupervisorTuning(stop_grace_seconds=1.0, backoff_initial_seconds=0.2, backoff_max_seconds=0.5)


def raw(mode: str, **changes: object) -> ServerConfig:
    base = ServerConfig(
        name="raw",
        transport="stdio",
        command=sys.executable,
        args=(str(RAW), mode),
        health=HealthConfig(interval_seconds=60),
        init_seconds=5,
        call_seconds=5,
    )
    return ServerConfig(**{**base.__dict__, **changes})  # type: ignore[arg-type]


@asynccontextmanager
async def running(config: ServerConfig) -> AsyncIterator[ServerRuntime]:
    runtime = ServerRuntime(config, FAST)
    runtime.start()
    try:
        yield runtime
    finally:
        with anyio.fail_after(15):
            await runtime.stop()


async def until(what: str, check: object, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # type: ignore[operator]
            await anyio.sleep(0.05)


async def ready(runtime: ServerRuntime) -> Replica:
    with anyio.fail_after(10):
        return await runtime.pick(10)


async def test_a_child_that_dies_while_its_grandchild_holds_stdout_fails_calls_at_once() -> None:
    async with running(raw("grandchild")) as runtime:
        replica = await ready(runtime)
        pid = replica.pid
        assert pid is not None and len(group_members(pid)) == 2
        connection = replica.connection
        assert connection is not None
        started = time.monotonic()
        with pytest.raises(UpstreamGone, match="exited with code 3"):
            await connection.request("tools/call", {"name": "exit", "arguments": {}}, timeout=30)
        assert time.monotonic() - started < 1.0
        await until("the grandchild to be killed with its group", lambda: not group_members(pid))
        await until("a restart", lambda: replica.restarts >= 1 and replica.ready)


async def test_a_malformed_notification_is_ignored_and_the_instance_keeps_serving() -> None:
    async with running(raw("bad-notification")) as runtime:
        replica = await ready(runtime)
        await anyio.sleep(0.3)
        assert replica.connection is not None
        answer = await replica.connection.request("tools/list", {}, timeout=5)
        assert answer["result"]["tools"][0]["name"] == "exit"
        assert replica.status == "RUNNING" and replica.restarts == 0


async def test_an_upstream_that_closes_stdin_is_restarted_not_abandoned() -> None:
    async with running(raw("close-stdin")) as runtime:
        replica = runtime.replicas[0]
        await until("two restarts", lambda: replica.restarts >= 2, timeout=15)
        assert replica.status in ("STARTING", "BACKOFF", "RUNNING")


async def test_an_upstream_that_stops_reading_cannot_block_a_caller_past_its_timeout() -> None:
    async with running(raw("stop-reading")) as runtime:
        replica = await ready(runtime)
        assert replica.connection is not None
        big = {"name": "echo", "arguments": {"text": "x" * 1_000_000}}  # far more than a pipe holds
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await replica.connection.request("tools/call", big, timeout=1)
        assert time.monotonic() - started < 3


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    async with running(raw("ignore-term")) as runtime:
        replica = await ready(runtime)
        pid = replica.pid
        assert pid is not None
        started = time.monotonic()
        with anyio.fail_after(10):
            await runtime.stop()
        assert FAST.stop_grace_seconds <= time.monotonic() - started < FAST.stop_grace_seconds + 3
        assert not pid_alive(pid)


async def test_stops_racing_probes_never_hang_and_leave_no_process() -> None:
    config = raw("ok", health=HealthConfig(interval_seconds=0.01, timeout_seconds=1))
    pids: list[int] = []
    for _ in range(25):
        runtime = ServerRuntime(config, FAST)
        runtime.start()
        replica = await ready(runtime)
        assert replica.pid is not None
        pids.append(replica.pid)
        await anyio.sleep(0.02 * (len(pids) % 5))  # land the stop at different points of a probe
        with anyio.fail_after(10):
            await runtime.stop()
        assert replica.status == "STOPPED"
    assert not [pid for pid in pids if pid_alive(pid)]


async def test_scale_down_and_kill_minus_nine_are_seen_and_reaped() -> None:
    async with running(raw("ok", replicas=3)) as runtime:
        await until("three running", lambda: sum(r.ready for r in runtime.replicas) == 3)
        pids = [r.pid for r in runtime.replicas]
        assert all(pids)
        os.kill(pids[0], signal.SIGKILL)  # type: ignore[arg-type]
        await until(
            "the killed one back", lambda: runtime.replicas[0].restarts == 1 and runtime.replicas[0].ready
        )
        await runtime.apply(raw("ok", replicas=1))
        assert [r.name for r in runtime.replicas] == ["raw-0"]
        assert not pid_alive(pids[1]) and not pid_alive(pids[2])  # type: ignore[arg-type]


async def test_after_a_call_is_abandoned_upstream_log_lines_are_not_given_to_the_next_caller() -> None:
    """A timed-out call may still run upstream (and log, or ask its client something): what the
    instance sends next cannot be told apart from the next caller's own, so it reaches no one."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "mcp_fixture_server.py"
    config = raw("-", args=(str(fixture), "stdio"))
    async with running(config) as runtime:
        connection = (await ready(runtime)).connection
        assert connection is not None
        heard: list[dict[str, object]] = []

        async def notify(message: dict[str, object]) -> None:
            heard.append(message)

        log = {"name": "log", "arguments": {"message": "mine"}}
        for _ in range(50):  # until the start-up health probe (also a request in flight) is done
            await connection.request("tools/call", log, timeout=5, notify=notify)
            if heard:
                break
            await anyio.sleep(0.1)
        assert [m["method"] for m in heard] == ["notifications/message"], "the only caller hears its log"
        heard.clear()
        with pytest.raises(UpstreamTimeout):
            await connection.request(
                "tools/call", {"name": "sleep", "arguments": {"seconds": 3}}, timeout=0.2, notify=notify
            )
        answer = await connection.request("tools/call", log, timeout=5, notify=notify)
        assert "result" in answer
        assert heard == [], "a log line while an abandoned call may still run is not attributed"


async def test_stdio_instances_start_in_turns_and_each_one_s_init_time_counts_from_its_spawn() -> None:
    """SupervisorTuning.starts: with one turn, three replicas of a server whose initialize takes
    0.6 s start one after another (each spawned when the one before is initialized), and none runs
    out of its 1.5 s initSeconds waiting, though all three together take longer than that."""
    tuning = SupervisorTuning(
        stop_grace_seconds=1.0, backoff_initial_seconds=0.2, starts=asyncio.Semaphore(1)
    )
    runtime = ServerRuntime(raw("slow-start", replicas=3, init_seconds=1.5), tuning)
    runtime.start()
    try:
        await until("three RUNNING", lambda: sum(r.ready for r in runtime.replicas) == 3, timeout=20)
        spans = sorted(
            (
                next(e.time for e in replica.events if e.type == "started"),
                next(e.time for e in replica.events if e.type == "ready"),
            )
            for replica in runtime.replicas
        )
        assert all(replica.restarts == 0 for replica in runtime.replicas)
        for (_, ready), (spawned, _) in itertools.pairwise(spans):
            assert spawned >= ready, spans  # the next one was spawned once the one before was ready
        assert (spans[-1][1] - spans[0][0]).total_seconds() > 1.5  # longer than one initSeconds
    finally:
        with anyio.fail_after(15):
            await runtime.stop()


async def test_a_start_that_fails_unexpectedly_gives_its_turn_back() -> None:
    """An environment variable name the OS refuses makes the spawn raise ValueError (not SpawnError):
    the replica backs off and tries again, and every try's turn is given back, so another server
    still starts with the only turn there is."""
    tuning = SupervisorTuning(
        stop_grace_seconds=1.0,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.05,
        starts=asyncio.Semaphore(1),
    )
    broken = ServerRuntime(raw("ok", name="broken", env={"BAD=NAME": "x"}), tuning)
    broken.start()
    try:
        await until("several failed tries", lambda: broken.replicas[0].restarts >= 3 or _tries(broken) >= 3)
        healthy = ServerRuntime(raw("ok", name="healthy"), tuning)
        healthy.start()
        try:
            await until(
                "the other server RUNNING", lambda: any(r.ready for r in healthy.replicas), timeout=10
            )
        finally:
            with anyio.fail_after(15):
                await healthy.stop()
    finally:
        with anyio.fail_after(15):
            await broken.stop()


def _tries(runtime: ServerRuntime) -> int:
    return sum(1 for r in runtime.replicas for e in r.events if e.type in ("failed", "exited"))
