"""Spawning ahead (supervisor/prelaunch.py) with real child processes: the plan on disk is encrypted
and owner-only, a replica adopts the process spawned for exactly its launch, and a process spawned
for a launch the database no longer has is ended, whoever was to take it. The plan is a hint, never
an authority: what a replica adopts is compared with the database's config field by field."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import anyio
import pytest

from mcpctl.core.crypto import SecretCipher
from mcpctl.mcpd.supervisor.instance import HealthConfig, ServerConfig, SupervisorTuning
from mcpctl.mcpd.supervisor.prelaunch import PLAN_FILE, PlanWriter, Prelaunched, read_plan
from mcpctl.mcpd.supervisor.runtime import ServerRuntime
from tests.processes import pid_alive

pytestmark = pytest.mark.anyio

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw_mcp_server.py"
DB = "sqlite+aiosqlite:////data/mcpd.db"


def stdio(name: str = "raw", **changes: object) -> ServerConfig:
    base = ServerConfig(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=(str(RAW), "ok"),
        env={"API_TOKEN": "plan-secret-value"},
        health=HealthConfig(interval_seconds=60),
        init_seconds=5,
        call_seconds=5,
    )
    return ServerConfig(**{**base.__dict__, **changes})  # type: ignore[arg-type]


async def until_dead(pid: int) -> None:
    with anyio.fail_after(10):
        while pid_alive(pid):
            await anyio.sleep(0.05)


def test_the_plan_holds_only_startable_stdio_servers_encrypted_and_owner_only(tmp_path: Path) -> None:
    cipher = SecretCipher(SecretCipher.generate_key())
    PlanWriter(tmp_path, DB, cipher).write(
        [
            stdio("zeta", replicas=2),
            stdio("alpha"),
            stdio("remote", transport="http", command=None, args=(), url="http://127.0.0.1:9/mcp"),
            stdio("broken", error="secret 'x' not found"),
            stdio("scaled-down", replicas=0),
        ]
    )
    path = tmp_path / PLAN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert b"plan-secret-value" not in raw and b"raw_mcp_server" not in raw
    plan = read_plan(tmp_path, DB, cipher)
    assert [(s["name"], s["replicas"]) for s in plan] == [("alpha", 1), ("zeta", 2)]
    assert plan[0]["env"] == {"API_TOKEN": "plan-secret-value"}
    assert read_plan(tmp_path, "sqlite+aiosqlite:////elsewhere/mcpd.db", cipher) == []  # another database
    # another key (a restored database with its own key, a damaged file): no plan, no error
    assert read_plan(tmp_path, DB, SecretCipher(SecretCipher.generate_key())) == []
    path.write_bytes(b"not a token")
    assert read_plan(tmp_path, DB, cipher) == []


async def test_a_replica_adopts_the_process_spawned_for_its_launch(tmp_path: Path) -> None:
    cipher = SecretCipher(SecretCipher.generate_key())
    config = stdio()
    PlanWriter(tmp_path, DB, cipher).write([config])
    ahead = await Prelaunched.launch(tmp_path, DB, cipher, grace_seconds=1.0)
    spawned = ahead.take_all(config)
    assert list(spawned) == [0]
    pid = spawned[0].pid
    assert pid is not None and pid_alive(pid)
    runtime = ServerRuntime(
        config, SupervisorTuning(stop_grace_seconds=1.0, process_groups=ahead.groups), spawned
    )
    runtime.start()
    try:
        with anyio.fail_after(10):
            replica = await runtime.pick(10)
        assert replica.pid == pid  # the early process, initialized and serving: none spawned twice
        await ahead.close_rest()  # nothing left to close: it was taken
        assert pid_alive(pid)
    finally:
        with anyio.fail_after(15):
            await runtime.stop()
    await until_dead(pid)


async def test_a_process_spawned_for_a_changed_launch_is_not_adopted_and_is_ended(tmp_path: Path) -> None:
    cipher = SecretCipher(SecretCipher.generate_key())
    PlanWriter(tmp_path, DB, cipher).write([stdio(), stdio("removed")])
    ahead = await Prelaunched.launch(tmp_path, DB, cipher, grace_seconds=1.0)
    early = [link.pid for _, link in ahead._links.values()]
    assert len(early) == 2 and all(pid is not None and pid_alive(pid) for pid in early)
    # the database now says another env for `raw`, and `removed` is gone
    assert ahead.take_all(stdio(env={"API_TOKEN": "rotated"})) == {}
    await ahead.close_rest()
    for pid in early:
        assert pid is not None
        await until_dead(pid)


async def test_a_replica_stopped_before_its_first_start_ends_the_process_spawned_for_it(
    tmp_path: Path,
) -> None:
    cipher = SecretCipher(SecretCipher.generate_key())
    config = stdio()
    PlanWriter(tmp_path, DB, cipher).write([config])
    ahead = await Prelaunched.launch(tmp_path, DB, cipher, grace_seconds=1.0)
    spawned = ahead.take_all(config)
    pid = spawned[0].pid
    assert pid is not None
    runtime = ServerRuntime(
        config, SupervisorTuning(stop_grace_seconds=1.0, process_groups=ahead.groups), spawned
    )
    runtime.start()
    with anyio.fail_after(15):
        await runtime.stop()
    await until_dead(pid)


async def test_a_forged_plan_is_not_adopted_under_a_server_s_name(tmp_path: Path) -> None:
    """Regression: the plan once carried each server's launch fingerprint and a replica trusted it,
    so a plan written with the key could run any command under a server's name, with its token."""
    cipher = SecretCipher(SecretCipher.generate_key())
    config = stdio()
    forged = stdio(args=(str(RAW), "ok", "--forged"))
    PlanWriter(tmp_path, DB, cipher).write([forged])
    ahead = await Prelaunched.launch(tmp_path, DB, cipher, grace_seconds=1.0)
    early = [link.pid for _, link in ahead._links.values()]
    assert len(early) == 1
    assert ahead.take_all(config) == {}
    assert ahead.take_all(stdio(error="secret 'x' not found", args=forged.args)) == {}  # not startable now
    await ahead.close_rest()
    assert early[0] is not None
    await until_dead(early[0])
