"""Faults the supervisor must survive: commands that do not exist, exit at once or never answer,
children killed or frozen mid-call, slow calls, hundreds of create/delete cycles, and mcpd's own
SIGTERM. Nothing may hang, leak a process or a file descriptor, or keep a stale health state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mcpctl.mcpd.supervisor.groups import FILE_NAME, GroupLedger
from tests.e2e.conftest import Cli, Mcpd, _cli_maker, login_admin, running_mcpd
from tests.e2e.upstreams import (
    ACCEPT,
    FIXTURE,
    INITIALIZE,
    PYTHON,
    TIME_SERVER,
    instances,
    mcp_client,
    proxy_url,
    run,
    upstream_env,
    wait_for,
    wait_running,
)
from tests.processes import descendants, open_fds, pid_alive

pytestmark = pytest.mark.e2e


MCPD_ENV = {"MCPD_BACKOFF_MAX_SECONDS": "4"}  # on top of the upstream settings (conftest `daemon`)


@pytest.fixture(scope="module")
def op(daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return login_admin(_cli_maker(daemon, tmp_path_factory.mktemp("clis"))())


def apply_server(op: Cli, tmp_path: Path, name: str, spec: dict[str, Any]) -> None:
    import yaml

    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump({"kind": "Server", "metadata": {"name": name}, "spec": spec}))
    op.ok("apply", "-f", str(manifest))


def fixture_spec(**extra: Any) -> dict[str, Any]:
    return {"transport": "stdio", "command": PYTHON, "args": [str(FIXTURE)], **extra}


def the_instance(op: Cli, server: str) -> dict[str, Any]:
    [item] = instances(op, server)
    return item


def event_text(item: dict[str, Any]) -> str:
    return "\n".join(f"{e['type']}: {e['message']}" for e in item["status"]["events"])


def bearer(op: Cli) -> dict[str, str]:
    return {**ACCEPT, "Authorization": f"Bearer {op.session_token()}"}


# ---- starts that cannot work -------------------------------------------------------------------------


def test_missing_command_is_failed_with_the_reason_and_calls_fail_fast(op: Cli) -> None:
    op.ok("create", "server", "ghost", "--transport", "stdio", "--command", "no-such-mcp-command-x")
    item = wait_for("FAILED", lambda: (i := the_instance(op, "ghost"))["status"]["status"] == "FAILED" and i)
    assert "not found" in item["status"]["reason"]
    assert "not found" in event_text(item)
    started = time.monotonic()
    with httpx.Client(timeout=30) as http:
        answer = http.post(proxy_url(op, "ghost"), json=INITIALIZE, headers=bearer(op))
    assert time.monotonic() - started < 2, "no running instance and none starting: the caller is told at once"
    assert answer.status_code == 502
    assert "ghost" in answer.json()["error"]["message"]
    op.ok("delete", "server", "ghost")


def test_command_that_exits_at_once_backs_off_with_growing_delays(op: Cli, tmp_path: Path) -> None:
    apply_server(op, tmp_path, "quitter", fixture_spec(env={"FIXTURE_EXIT_AT_START": "3"}))
    item = wait_for(
        "three restarts", lambda: (i := the_instance(op, "quitter"))["status"]["restarts"] >= 3 and i
    )
    assert item["status"]["status"] in ("BACKOFF", "STARTING")
    text = event_text(item)
    assert "exited with code 3" in text
    assert "restarting in 1s" in text and "restarting in 2s" in text and "restarting in 4s" in text
    op.ok("delete", "server", "quitter")


def test_server_that_never_answers_initialize_does_not_hang_anyone(op: Cli, tmp_path: Path) -> None:
    apply_server(
        op, tmp_path, "mute", fixture_spec(env={"FIXTURE_INIT_DELAY": "600"}, timeouts={"initSeconds": 1})
    )
    item = wait_for(
        "an initialize timeout",
        lambda: "did not answer initialize" in event_text(i := the_instance(op, "mute")) and i,
    )
    assert item["status"]["status"] in ("BACKOFF", "STARTING")
    started = time.monotonic()
    with httpx.Client(timeout=30) as http:
        assert http.get(f"{op.daemon.url}/healthz").status_code == 200
        answer = http.post(proxy_url(op, "mute"), json=INITIALIZE, headers=bearer(op))
    assert time.monotonic() - started < 5, "a caller waits at most initSeconds for a starting instance"
    assert answer.status_code == 502
    op.ok("delete", "server", "mute")


# ---- deaths and timeouts mid-call ----------------------------------------------------------------------


def test_kill9_during_a_call_returns_an_error_within_a_second(op: Cli, tmp_path: Path) -> None:
    apply_server(op, tmp_path, "fragile", fixture_spec())
    [item] = wait_running(op, "fragile", 1)
    pid = item["status"]["pid"]

    async def call() -> tuple[str, float]:
        import anyio

        async with (
            mcp_client(proxy_url(op, "fragile"), op.session_token()) as client,
            anyio.create_task_group() as group,
        ):

            async def killer() -> None:
                await anyio.sleep(1.0)
                os.kill(pid, signal.SIGKILL)

            group.start_soon(killer)
            started = time.monotonic()
            try:
                await client.call_tool("sleep", {"seconds": 60})
            except MCPError as exc:
                return str(exc), time.monotonic() - started
            return "no error", time.monotonic() - started

    message, elapsed = run(call)
    assert "killed by SIGKILL" in message
    assert elapsed < 1.0 + 1.0, f"the in-flight call waited {elapsed:.1f}s after the kill"
    wait_running(op, "fragile", 1)  # and it comes back
    op.ok("delete", "server", "fragile")


def test_crash_mid_call_and_per_call_timeout(op: Cli, tmp_path: Path) -> None:
    apply_server(op, tmp_path, "flaky", fixture_spec(timeouts={"callSeconds": 1}))
    wait_running(op, "flaky", 1)

    async def calls() -> list[tuple[str, float]]:
        out = []
        async with mcp_client(proxy_url(op, "flaky"), op.session_token()) as client:
            for tool, args in (("sleep", {"seconds": 10}), ("crash", {"code": 7})):
                started = time.monotonic()
                try:
                    await client.call_tool(tool, args)
                    out.append(("no error", time.monotonic() - started))
                except MCPError as exc:
                    out.append((str(exc), time.monotonic() - started))
        return out

    (slow, slow_s), (crash, crash_s) = run(calls)
    assert "within 1s" in slow and slow_s < 3
    assert "exited with code 7" in crash and crash_s < 2
    item = wait_for("the restart", lambda: (i := the_instance(op, "flaky"))["status"]["restarts"] >= 1 and i)
    assert "exited with code 7" in event_text(item)
    op.ok("delete", "server", "flaky")


# ---- health ----------------------------------------------------------------------------------------


def test_probe_timeouts_degrade_then_recover_without_sticking(op: Cli, tmp_path: Path) -> None:
    check = {"intervalSeconds": 0.5, "timeoutSeconds": 0.5, "failureThreshold": 100}
    apply_server(op, tmp_path, "frozen", fixture_spec(healthCheck=check))
    [item] = wait_running(op, "frozen", 1)
    pid = item["status"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for("degraded", lambda: the_instance(op, "frozen")["status"]["healthStatus"] == "degraded")
    finally:
        os.kill(pid, signal.SIGCONT)
    item = wait_for(
        "healthy again",
        lambda: (i := the_instance(op, "frozen"))["status"]["healthStatus"] == "healthy" and i,
    )
    assert item["status"]["pid"] == pid and item["status"]["restarts"] == 0
    assert "probe-failed" in event_text(item) and "healthy again" in event_text(item)
    op.ok("delete", "server", "frozen")


def test_unhealthy_instance_is_restarted_and_the_next_good_probe_clears_it(op: Cli, tmp_path: Path) -> None:
    check = {
        "tool": "echo",
        "arguments": {"text": "ok"},
        "intervalSeconds": 0.5,
        "timeoutSeconds": 0.5,
        "failureThreshold": 2,
    }
    apply_server(op, tmp_path, "hung", fixture_spec(healthCheck=check))
    [item] = wait_running(op, "hung", 1)
    pid = item["status"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # alive but answering nothing: only a probe can tell
    item = wait_for(
        "an unhealthy verdict and a restart",
        lambda: (
            (i := the_instance(op, "hung"))["status"]["restarts"] >= 1 and i["status"]["pid"] != pid and i
        ),
    )
    assert "unhealthy" in event_text(item)
    wait_for("the frozen process to be killed", lambda: not pid_alive(pid), timeout=15)
    wait_for(
        "healthy after the restart", lambda: the_instance(op, "hung")["status"]["healthStatus"] == "healthy"
    )
    op.ok("delete", "server", "hung")


# ---- secrets reach the child, not the output ------------------------------------------------------------


def test_secret_env_reaches_the_child_only(op: Cli, tmp_path: Path) -> None:
    op.ok("create", "secret", "fixture-secret", "--data", "TOKEN=s3cr3t-value-xyz")
    op.ok(
        "create", "server", "secretive", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE),
        "--env", "PLAIN=visible", "--env-secret", "FIXTURE_TOKEN=fixture-secret:TOKEN",
    )  # fmt: skip
    wait_running(op, "secretive", 1)

    async def call() -> tuple[str, str, str]:
        async with mcp_client(proxy_url(op, "secretive"), op.session_token()) as client:
            token = (await client.call_tool("env", {"name": "FIXTURE_TOKEN"})).content[0].text
            plain = (await client.call_tool("env", {"name": "PLAIN"})).content[0].text
            leaked = (await client.call_tool("env", {"name": "MCPCTL_CONFIG"})).content[0].text
            return token, plain, leaked

    token, plain, leaked = run(call)
    assert (token, plain) == ("s3cr3t-value-xyz", "visible")
    assert leaked == "", "a child gets a minimal environment, not mcpd's"
    for args in (("get", "instances", "-o", "yaml"), ("describe", "instance", "secretive-0")):
        assert "s3cr3t-value-xyz" not in op.ok(*args).stdout
    assert "s3cr3t-value-xyz" not in op.daemon.log()
    op.ok("delete", "server", "secretive")
    op.ok("delete", "secret", "fixture-secret")


# ---- no leaks ----------------------------------------------------------------------------------------


def test_200_create_delete_cycles_leave_no_process_and_no_fd(op: Cli, daemon: Mcpd) -> None:
    assert daemon.process is not None
    mcpd_pid = daemon.process.pid
    headers = {"Authorization": f"Bearer {op.session_token()}"}
    # a shell with a grandchild: only killing the whole process group leaves nothing behind
    spec = {"transport": "stdio", "command": "sh", "args": ["-c", "sleep 300 & sleep 300"]}
    body = {"metadata": {"name": "cycle"}, "spec": spec}
    with httpx.Client(base_url=daemon.url, headers=headers, timeout=30) as http:

        def one_cycle() -> None:
            assert http.post("/api/v1/servers", json=body).status_code == 201
            wait_for(
                "a spawned process",
                lambda: any(
                    i["status"]["pid"]
                    for i in http.get("/api/v1/instances", params={"server": "cycle"}).json()["items"]
                ),
                timeout=10,
                interval=0.02,
            )
            assert http.delete("/api/v1/servers/cycle").status_code == 204

        for _ in range(5):  # warm up: lazily created pools, caches, imports
            one_cycle()
        wait_for("no children after warm-up", lambda: not descendants(mcpd_pid), timeout=20)
        fds_before = open_fds(mcpd_pid)
        for _ in range(200):
            one_cycle()
        wait_for("every child of 200 cycles to be gone", lambda: not descendants(mcpd_pid), timeout=30)
        assert http.get("/api/v1/instances", params={"server": "cycle"}).json()["items"] == []
    fds_after = open_fds(mcpd_pid)
    assert fds_after <= fds_before + 3, f"open fds grew from {fds_before} to {fds_after}"


def test_sigterm_to_mcpd_leaves_no_child_behind(tmp_path: Path) -> None:
    with running_mcpd(tmp_path / "own", "sqlite", **upstream_env()) as daemon:
        op = login_admin(_cli_maker(daemon, tmp_path)())
        op.ok("create", "server", "time", *TIME_SERVER, "--replicas", "2")
        op.ok(
            "create",
            "server",
            "shell",
            "--transport",
            "stdio",
            "--command",
            "sh",
            "--arg",
            "-c",
            "--arg",
            "sleep 300 & sleep 300",
        )
        wait_running(op, "time", 2)
        assert daemon.process is not None
        mcpd_pid = daemon.process.pid

        def spawned() -> set[int] | None:
            found = descendants(mcpd_pid)
            return found if len(found) >= 5 else None  # two time servers, sh and its two sleeps

        children = wait_for("time and shell processes", spawned)
        daemon.stop()  # SIGTERM, and it must exit on its own
    assert not [pid for pid in children if pid_alive(pid)], "every process group was terminated and reaped"


def test_restarting_mcpd_brings_every_server_back(tmp_path: Path) -> None:
    with running_mcpd(tmp_path / "own", "sqlite", **upstream_env()) as daemon:
        op = login_admin(_cli_maker(daemon, tmp_path)())
        op.ok("create", "server", "time", *TIME_SERVER, "--replicas", "2")
        before = {i["status"]["pid"] for i in wait_running(op, "time", 2)}
        daemon.restart()
        after = {i["status"]["pid"] for i in wait_running(op, "time", 2)}
        assert not before & after and not any(pid_alive(p) for p in before)


def _kill9(daemon: Mcpd) -> None:
    """kill -9 of mcpd: nothing of its shutdown runs."""
    process, daemon.process = daemon.process, None
    assert process is not None
    process.kill()
    process.wait(timeout=10)
    daemon._close_log()


def test_after_kill9_of_mcpd_the_next_mcpd_of_its_data_dir_kills_the_orphaned_groups(tmp_path: Path) -> None:
    shell = ["--transport", "stdio", "--command", "sh", "--arg", "-c", "--arg", "sleep 300 & sleep 300"]
    with running_mcpd(tmp_path / "own", "sqlite", **upstream_env()) as daemon:
        op = login_admin(_cli_maker(daemon, tmp_path)())
        op.ok("create", "server", "shell", *shell)
        assert daemon.process is not None
        mcpd_pid = daemon.process.pid

        def spawned() -> set[int] | None:
            found = descendants(mcpd_pid)
            return found if len(found) >= 3 else None  # sh and its two sleeps

        found = wait_for("sh and its sleeps", spawned)
        children = {p for p in found if _parent(p) == mcpd_pid}
        orphans = found - children
        assert len(children) == 1 and len(orphans) >= 2
        _kill9(daemon)
        # the child itself dies with mcpd (PR_SET_PDEATHSIG); its own children do not
        wait_for("the killed mcpd's child to die with it", lambda: not any(pid_alive(p) for p in children))
        assert all(pid_alive(p) for p in orphans), "orphaned, and nobody ends them"
        daemon.start()  # the same data dir: it starts "shell" anew, and must end the old group
        wait_for("the orphans of the killed mcpd to be gone", lambda: not any(pid_alive(p) for p in orphans))


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


def test_a_recorded_group_whose_pid_now_belongs_to_another_process_is_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        recorder = GroupLedger(tmp_path)
        recorder.add(bystander.pid)
        ledger = tmp_path / FILE_NAME
        [record] = json.loads(ledger.read_text())["groups"]
        assert record["pgid"] == bystander.pid
        # the recorded leader started earlier: this pid has been reused since
        _rewrite(ledger, lambda body: body["groups"][0].update(start_ticks=record["start_ticks"] - 1))
        assert GroupLedger(tmp_path).reap_leftovers() == []
        assert bystander.poll() is None, "an unrelated process was killed"
        recorder.add(bystander.pid)  # truly the recorded group again, but its mcpd is alive elsewhere
        stamp = json.loads(ledger.read_text())["groups"][0]
        owner = {"pid": bystander.pid, "start_ticks": stamp["start_ticks"], "boot_id": stamp["boot_id"]}
        _rewrite(ledger, lambda body: body.update(owner=owner))
        assert GroupLedger(tmp_path).reap_leftovers() == []
        assert bystander.poll() is None, "a running mcpd's child was killed"
        recorder.add(bystander.pid)  # written by this (test) process: the recorded group is reaped
        assert GroupLedger(tmp_path).reap_leftovers() == [bystander.pid]
        assert bystander.wait(timeout=10) == -signal.SIGKILL
    finally:
        if bystander.poll() is None:
            bystander.kill()
            bystander.wait(timeout=10)
