"""Two real mcpd replicas on one PostgreSQL database: exactly one runs a server's instances at a time
(the server's lease), the other forwards project-endpoint calls to it over the data-plane link, and
takes over when the holder is SIGKILLed (within 15 s) or stopped (within seconds).

"Exactly one" is checked by process listing: a sampler thread counts, every 50 ms for the whole
test, the live processes whose command line carries the server's unique `--name`, wherever they are
(an orphan of a killed mcpd counts too).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import PG_HOST, create_pg_database, drop_pg_database
from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.upstreams import ACCEPT, FIXTURE, INITIALIZE, PYTHON, run, upstream_env, wait_for
from tests.processes import descendants, pid_alive

pytestmark = pytest.mark.e2e

TAKEOVER_LIMIT = 15.0  # the bound after SIGKILL of the holder
RELEASE_LIMIT = 5.0  # after a graceful stop ("a couple of seconds" plus a process start)


def _marked(marker: str) -> set[int]:
    """Live processes whose command line has `marker` as one argument."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and pid_alive(int(entry.name)):
            found.add(int(entry.name))
    return found


class Sampler:
    """Counts the server's processes every 50 ms in a thread; remembers every sample above one."""

    def __init__(self, marker: str):
        self.marker = marker
        self.samples = 0
        self.overlaps: list[tuple[float, set[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _marked(self.marker)
            self.samples += 1
            if len(pids) > 1:
                self.overlaps.append((time.monotonic(), pids))
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _runner(marker: str, daemons: list[Mcpd]) -> Mcpd | None:
    """The running mcpd among `daemons` whose descendants include the server's (one) process."""
    pids = _marked(marker)
    for daemon in daemons:
        if daemon.process is not None and pids & descendants(daemon.process.pid):
            return daemon
    return None


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Mcpd]]:
    name = asyncio.run(create_pg_database())
    url = f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
    env = {**upstream_env(), "MCPD_SECRET_KEY": secrets.token_urlsafe(32)}
    daemons = [
        Mcpd(
            backend="postgresql",
            data_dir=tmp_path / f"{label}/data",
            stderr_path=tmp_path / f"{label}.stderr",
            database_url=url,
            extra_env={**env, "MCPD_REPLICA_ID": f"replica-{label}"},
        )
        for label in ("a", "b")
    ]
    for daemon in daemons:
        daemon.data_dir.mkdir(parents=True)
    try:
        for daemon in daemons:  # one after the other: the first creates the admin
            daemon.start()
        yield daemons
    finally:
        try:
            for daemon in daemons:
                daemon.stop()
        finally:
            asyncio.run(drop_pg_database(name))


@asynccontextmanager
async def _client(url: str, token: str) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as session,
    ):
        yield session


def _call_pid(daemon: Mcpd, token: str) -> int:
    async def scenario() -> int:
        async with _client(f"{daemon.url}/projects/p/mcp", token) as session:
            result = await session.call_tool("fx__pid", {})
            assert not result.is_error, result
            structured = result.structured_content or {}
            return int(structured.get("result", structured.get("pid", 0)))

    return run(scenario)


def _sigkill(daemon: Mcpd) -> None:
    process, daemon.process = daemon.process, None
    assert process is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    daemon._close_log()


def test_one_replica_runs_a_server_and_another_takes_over(replicas: list[Mcpd], tmp_path: Path) -> None:
    a, b = replicas
    marker = f"lease-{secrets.token_hex(4)}"
    admin = login_admin(Cli(a, tmp_path / "cli-a.yaml"))  # a created the admin (it started first)
    args = (f"--arg={FIXTURE}", "--arg=--name", f"--arg={marker}")
    admin.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, *args)
    admin.ok("create", "project", "p", "--server", "fx")
    token: str = admin.json("create", "mcptoken", "t", "-p", "p")["token"]

    with Sampler(marker) as sampler:
        holder = wait_for("fx running on one replica", lambda: _runner(marker, replicas), timeout=30)
        other = b if holder is a else a
        (pid,) = _marked(marker)

        # a call through the replica that does not hold the lease reaches the holder's process
        assert _call_pid(other, token) == pid
        assert _call_pid(holder, token) == pid

        # the per-server proxy of the non-holder relays to the holder: a whole session through it
        session_token = admin.session_token()
        bearer = {**ACCEPT, "Authorization": f"Bearer {session_token}"}
        proxy = f"{other.url}/api/v1/servers/fx/mcp"
        opened = httpx.post(proxy, json=INITIALIZE, headers=bearer, timeout=10)
        assert opened.status_code == 200, opened.text
        sid = {**bearer, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "pid", "arguments": {}}}
        called = httpx.post(proxy, json=call, headers=sid, timeout=10)
        assert called.status_code == 200 and str(pid) in called.text, called.text
        assert httpx.delete(proxy, headers=sid, timeout=10).status_code == 200
        gone = httpx.post(proxy, json=call, headers=sid, timeout=10)
        assert gone.status_code == 404, gone.text

        # instances are listed (and one is shown, with its logs) whichever replica is asked
        for daemon in (holder, other):
            api = {"Authorization": f"Bearer {session_token}"}
            listed = httpx.get(f"{daemon.url}/api/v1/instances", params={"server": "fx"}, headers=api)
            assert [i["status"]["pid"] for i in listed.json()["items"]] == [pid], listed.text
            one = httpx.get(f"{daemon.url}/api/v1/instances/fx-0", headers=api)
            assert one.status_code == 200 and one.json()["status"]["pid"] == pid, one.text
            logs = httpx.get(f"{daemon.url}/api/v1/instances/fx-0/logs", headers=api)
            assert logs.status_code == 200 and logs.json()["instance"] == "fx-0", logs.text
            in_project = httpx.get(f"{daemon.url}/api/v1/projects/p/instances", headers=api)
            assert [i["metadata"]["name"] for i in in_project.json()["items"]] == ["fx-0"]
            missing = httpx.get(f"{daemon.url}/api/v1/instances/fx-7", headers=api)
            assert missing.status_code == 404, missing.text

        # SIGKILL the holder: its child dies with it, the other replica runs the server within 15 s
        killed_at = time.monotonic()
        _sigkill(holder)
        assert wait_for("the killed holder's child to die", lambda: not pid_alive(pid) or None, timeout=5)
        wait_for("the other replica to run fx", lambda: _runner(marker, [other]), timeout=30)
        takeover = time.monotonic() - killed_at
        print(f"takeover after SIGKILL of the holder: {takeover:.2f}s")
        assert takeover < TAKEOVER_LIMIT
        (new_pid,) = _marked(marker)
        assert _call_pid(other, token) == new_pid

        # the killed one comes back (not holding fx); a graceful stop of the holder hands over at once
        holder.start()
        time.sleep(1.0)
        assert _runner(marker, [holder]) is None
        assert _call_pid(holder, token) == new_pid  # forwarded to the holder
        stopped_at = time.monotonic()
        other.stop()
        wait_for("the restarted replica to run fx", lambda: _runner(marker, [holder]), timeout=30)
        handover = time.monotonic() - stopped_at
        print(f"handover after a graceful stop of the holder: {handover:.2f}s")
        assert handover < RELEASE_LIMIT
        other.start()

    assert sampler.samples > 100
    assert sampler.overlaps == [], f"two processes of fx at once: {sampler.overlaps[:5]}"
