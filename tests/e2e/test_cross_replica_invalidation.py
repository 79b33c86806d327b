"""DESIGN §11 across replicas, with real processes: mcpd A and mcpd B on ONE PostgreSQL database, both
publishing and subscribing through the real Redis, and `mcplocal serve` linked to B with a 30 s positive
introspection TTL. A revocation made at A is refused by that mcplocal within a second (p99 over 20
revocations), and a server added to a project at A reaches a legacy session there as list_changed
within a second. A third mcpd C on the same database has no Redis: a mcplocal linked to it that
subscribes itself (`MCPLOCAL_REDIS_URL`) still hears A's revocations within a second.

Projects here have no stdio servers (only an http one): every replica supervises what it finds in the
database until supervision leases exist."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest

from tests.e2e.conftest import Cli, Mcpd, free_port, login_admin, running_mcpd
from tests.e2e.rawmcp import headers, open_session
from tests.e2e.test_lists_follow_the_project import cli, legacy, tool_names
from tests.e2e.test_mcplocal_split import mcplocal_serve
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import FIXTURE, PYTHON, run
from tests.processes import wait_listening
from tests.support.redis import require_redis, unique_prefix

pytestmark = pytest.mark.e2e
WITHIN = 1.0  # DESIGN §11
REVOCATIONS = 20
POLL = 0.01
REFUSAL_DEADLINE = 5.0  # a bound for each wait; the assertion is on WITHIN
TTL_30S = {"MCPLOCAL_TOKEN_POSITIVE_TTL_MS": "30000"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}


@dataclass
class Cluster:
    a: Mcpd
    b: Mcpd
    c: Mcpd  # no Redis
    redis_url: str
    prefix: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis_url, prefix = require_redis(), unique_prefix()
    base = tmp_path_factory.mktemp("replicas")
    shared = {"MCPD_SECRET_KEY": "one-key-for-every-replica", "MCPD_REDIS_CHANNEL": prefix}
    with running_mcpd(base / "a", "postgresql", MCPD_REDIS_URL=redis_url, **shared) as a:
        others = []
        for name, env in (("b", {"MCPD_REDIS_URL": redis_url, **shared}), ("c", shared)):
            (base / name).mkdir()
            others.append(
                Mcpd(
                    "postgresql",
                    base / name / "data",
                    base / name / "mcpd.stderr",
                    a.database_url,
                    extra_env=env,
                )
            )
        try:
            for other in others:
                other.start()
            yield Cluster(a, others[0], others[1], redis_url, prefix)
        finally:
            for other in others:
                other.stop()


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """The fixture MCP server over Streamable HTTP (an http server every replica can reach)."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, str(FIXTURE), "http", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, "the fixture over http")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def op(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The admin's CLI against mcpd A (where every change in this module is made)."""
    return login_admin(Cli(cluster.a, tmp_path_factory.mktemp("op") / "config.yaml"))


def _refused_after(http: httpx.Client, url: str, token: str, session: str) -> float:
    """Seconds until the mcplocal answers 401 to the token (bounded by REFUSAL_DEADLINE)."""
    started = time.monotonic()
    while time.monotonic() - started < REFUSAL_DEADLINE:
        status = http.post(url, json=TOOLS_LIST, headers=headers(token, session)).status_code
        if status == 401:
            return time.monotonic() - started
        assert status == 200, status
        time.sleep(POLL)
    pytest.fail(f"the revoked token was still accepted after {REFUSAL_DEADLINE}s")


def _revocation_delays(op: Cli, base: str, project: str, count: int) -> list[float]:
    """Mint at A, use through the mcplocal, revoke at A; how long until the mcplocal refuses it."""
    url = f"{base}/projects/{project}/mcp"
    delays = []
    with httpx.Client(timeout=10) as http:
        for n in range(count):
            name = f"{project}-{n}"
            token = mint(op, project, name)
            session = open_session(http, url, token)
            assert http.post(url, json=TOOLS_LIST, headers=headers(token, session)).status_code == 200
            op.ok("revoke", "mcptoken", name, "-p", project)  # at A: committed and published when it returns
            delays.append(_refused_after(http, url, token, session))
    return delays


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def _report(what: str, delays: list[float], tmp_path: Path) -> str:
    line = (
        f"{what}: n={len(delays)} p50={sorted(delays)[len(delays) // 2] * 1000:.0f}ms "
        f"p99={_p99(delays) * 1000:.0f}ms max={max(delays) * 1000:.0f}ms"
    )
    print(line)
    return line


def test_revocations_at_one_mcpd_reach_a_mcplocal_linked_to_another_within_a_second(
    cluster: Cluster, op: Cli, tmp_path: Path
) -> None:
    op.ok("create", "project", "rev")
    with mcplocal_serve(cluster.b, tmp_path, **TTL_30S) as base:
        delays = _revocation_delays(op, base, "rev", REVOCATIONS)
    line = _report("revocation at A -> 401 at mcplocal linked to B", delays, tmp_path)
    assert _p99(delays) < WITHIN, line


def test_a_server_added_at_one_mcpd_reaches_a_legacy_session_linked_to_another_within_a_second(
    cluster: Cluster, op: Cli, web: str, tmp_path: Path
) -> None:
    op.ok("create", "server", "web", "--transport", "http", "--url", web)
    op.ok("create", "project", "grow")
    token = mint(op, "grow", "grower")
    with mcplocal_serve(cluster.b, tmp_path, **TTL_30S) as base:

        async def scenario() -> dict[str, Any]:
            async with legacy(op, "grow", token, base) as (session, heard):
                before = tool_names(await session.list_tools())
                started = time.monotonic()
                done = await cli(op, "patch", "project", "grow", "servers=[web]")
                at = await heard.first(types.ToolListChangedNotification, started)
                return {"before": before, "after": at - done}

        seen = run(scenario)
    assert seen["before"] == set()
    assert seen["after"] < WITHIN, f"list_changed {seen['after']:.2f}s after the change at A"


def test_a_mcplocal_subscribed_itself_hears_revocations_its_own_mcpd_never_published(
    cluster: Cluster, op: Cli, tmp_path: Path
) -> None:
    op.ok("create", "project", "direct")
    env = {**TTL_30S, "MCPLOCAL_REDIS_URL": cluster.redis_url, "MCPLOCAL_REDIS_CHANNEL": cluster.prefix}
    with mcplocal_serve(cluster.c, tmp_path, **env) as base:
        with httpx.Client(timeout=10) as http:
            ready = http.get(f"{base}/readyz")
            assert ready.status_code == 200 and ready.json()["redis"] == "ok"
        delays = _revocation_delays(op, base, "direct", 5)
    line = _report("revocation at A -> 401 at mcplocal (own subscription) linked to C", delays, tmp_path)
    assert max(delays) < WITHIN, line
