"""A cluster on loopback (DESIGN §11, issue 14): two mcpd on one PostgreSQL database and three
`mcplocal serve` replicas, all on the real Redis, behind a real load balancer (Debian's HAProxy,
installed by `make test`) that sends each request to the next replica in turn; driven by the SDK
client in both eras.

- Revoking a token makes every replica answer 401 within a second (p99 over 20 revocations), and an
  expired token is refused everywhere within a second of its expiry.
- A legacy session keeps working while its client's requests go round the replicas and one replica
  is SIGKILLed: no call fails but those in flight on the killed replica, and they fail fast. A
  2026-07-28 client goes on too.

The upstream is an http server every mcpd reaches (the fixture over Streamable HTTP), so the test
does not depend on which mcpd supervises what."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import BIN, Cli, Mcpd, login_admin, running_mcpd
from tests.e2e.rawmcp import headers, open_session
from tests.e2e.test_cross_replica_invalidation import web  # noqa: F401  (the http upstream fixture)
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import run
from tests.processes import free_port, wait_listening
from tests.support.redis import require_redis, unique_prefix

pytestmark = pytest.mark.e2e

MCPLOCAL = str(BIN / "mcplocal")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
WITHIN = 1.0
REVOCATIONS = 20
DEADLINE = 5.0
TOOLS_LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}


@dataclass
class Cluster:
    mcpd: list[Mcpd]
    replicas: list[subprocess.Popen[bytes]]
    replica_urls: list[str]
    lb: str  # the load balancer's base URL
    ops: list[Cli] = field(default_factory=list)


def _haproxy_config(port: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"    server r{n} 127.0.0.1:{p} check inter 300ms fall 1 rise 2" for n, p in enumerate(backends)
    )
    return f"""global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    option http-server-close
    option redispatch
    retries 2
frontend mcp
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not os.path.exists(HAPROXY):
        reason = "HAProxy is not installed (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    redis_url, prefix = require_redis(), unique_prefix()
    base = tmp_path_factory.mktemp("cluster")
    shared = {"MCPD_SECRET_KEY": "one-key-for-every-replica", "MCPD_REDIS_URL": redis_url}
    shared["MCPD_REDIS_CHANNEL"] = prefix
    processes: list[subprocess.Popen[bytes]] = []
    with running_mcpd(base / "a", "postgresql", **shared) as a:
        (base / "b").mkdir()
        b = Mcpd(
            "postgresql", base / "b" / "data", base / "b" / "mcpd.stderr", a.database_url, extra_env=shared
        )
        b.start()
        try:
            ports = [free_port() for _ in range(3)]
            urls = []
            for n, port in enumerate(ports):
                mcpd = (a, b)[n % 2]
                env = {
                    **os.environ,
                    "MCPLOCAL_REDIS_URL": redis_url,
                    "MCPLOCAL_REDIS_CHANNEL": prefix,
                    "MCPLOCAL_TOKEN_POSITIVE_TTL_MS": "30000",
                }
                argv = [MCPLOCAL, "serve", "--mcpd-url", mcpd.url, "--port", str(port)]
                processes.append(_start(argv, base / f"mcplocal-{n}.log", env))
                wait_listening(port, processes[-1], f"mcplocal {n}")
                urls.append(f"http://127.0.0.1:{port}")
            lb_port = free_port()
            config = base / "haproxy.cfg"
            config.write_text(_haproxy_config(lb_port, ports))
            lb = _start([HAPROXY, "-db", "-f", str(config)], base / "haproxy.log")
            processes.append(lb)
            wait_listening(lb_port, lb, "haproxy")
            yield Cluster([a, b], processes[:3], urls, f"http://127.0.0.1:{lb_port}")
        finally:
            for process in processes:
                _stop(process)
            b.stop()


@pytest.fixture(scope="module")
def op(cluster: Cluster, web: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:  # noqa: F811
    op = login_admin(Cli(cluster.mcpd[0], tmp_path_factory.mktemp("op") / "config.yaml"))
    op.ok("create", "server", "web", "--transport", "http", "--url", web)
    op.ok("create", "project", "lb", "--server", "web")
    return op


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def _refused_everywhere(http: httpx.Client, cluster: Cluster, token: str, sessions: list[str]) -> float:
    """Seconds until every replica answers 401 to the token (each asked directly, in turn)."""
    started = time.monotonic()
    pending = set(range(len(cluster.replica_urls)))
    while pending and time.monotonic() - started < DEADLINE:
        for n in sorted(pending):
            url = f"{cluster.replica_urls[n]}/projects/lb/mcp"
            status = http.post(url, json=TOOLS_LIST, headers=headers(token, sessions[n])).status_code
            if status == 401:
                pending.discard(n)
            else:
                assert status == 200, status
        time.sleep(0.005)
    assert not pending, f"replicas {sorted(pending)} still accepted the token after {DEADLINE}s"
    return time.monotonic() - started


def test_a_revocation_reaches_every_replica_within_a_second(cluster: Cluster, op: Cli) -> None:
    delays = []
    at_b = Cli(cluster.mcpd[1], op.config.parent / "b.yaml")
    creds = cluster.mcpd[0].admin_credentials()  # one database: A's administrator
    at_b.login(creds["email"], creds["password"])
    with httpx.Client(timeout=10) as http:
        for n in range(REVOCATIONS):
            name = f"rev-{n}"
            token = mint(op, "lb", name)
            # each replica has the token's introspection cached (30 s) and a session of it open
            sessions = [open_session(http, f"{url}/projects/lb/mcp", token) for url in cluster.replica_urls]
            (op, at_b)[n % 2].ok("revoke", "mcptoken", name, "-p", "lb")  # at mcpd A or B in turn
            delays.append(_refused_everywhere(http, cluster, token, sessions))
    line = f"revocation -> 401 at all 3 replicas: p50 {sorted(delays)[len(delays) // 2] * 1000:.0f} ms, "
    line += f"p99 {_p99(delays) * 1000:.0f} ms over {len(delays)}"
    print(line)
    assert _p99(delays) < WITHIN, line


def test_an_expired_token_is_refused_everywhere_within_a_second_of_its_expiry(
    cluster: Cluster, op: Cli
) -> None:
    created = op.json("create", "mcptoken", "short", "-p", "lb", "--ttl", "6s")
    token, expiry = created["token"], _epoch(created["mcpToken"]["status"]["expiresAt"])
    with httpx.Client(timeout=10) as http:
        sessions = [open_session(http, f"{url}/projects/lb/mcp", token) for url in cluster.replica_urls]
        for n, url in enumerate(cluster.replica_urls):
            answer = http.post(f"{url}/projects/lb/mcp", json=TOOLS_LIST, headers=headers(token, sessions[n]))
            assert answer.status_code == 200
        time.sleep(max(0.0, expiry - time.time()))
        late = _refused_everywhere(http, cluster, token, sessions)
    assert late < WITHIN, f"refused everywhere {late:.2f}s after expiry"


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_a_client_keeps_calling_through_the_balancer_while_a_replica_is_killed(
    cluster: Cluster, op: Cli, era: str
) -> None:
    token = mint(op, "lb", f"survivor-{era[:4]}")
    victim = cluster.replicas[{"legacy": 0, "2026-07-28": 1}[era]]
    outcomes: list[tuple[float, float, str]] = []  # (start, duration, ok|error text)

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
            Client(
                streamable_http_client(f"{cluster.lb}/projects/lb/mcp", http_client=http),  # type: ignore[arg-type]
                mode=era,
            ) as client,
        ):
            killed_at: float | None = None
            for n in range(60):
                if n == 20:
                    victim.send_signal(signal.SIGKILL)
                    killed_at = time.monotonic()
                    # Gone before the next call: a POST that reaches a replica in the instant it dies
                    # is closed without any response, which the SDK's legacy client does not survive
                    # (its session ends: a client limitation, not the gateway's; seen once in ~15 runs
                    # on a loaded machine). The calls after it must all work.
                    await anyio.to_thread.run_sync(victim.wait)
                started = time.monotonic()
                try:
                    result = await client.call_tool("web__echo", {"text": f"call {n}"})
                    text = result.content[0].text if isinstance(result.content[0], types.TextContent) else ""
                    outcomes.append(
                        (started, time.monotonic() - started, "ok" if text == f"call {n}" else text)
                    )
                except Exception as exc:  # recorded: the assertion below says which may fail
                    outcomes.append((started, time.monotonic() - started, repr(exc)[:200]))
                await anyio.sleep(0.02)
            assert killed_at is not None

    run(scenario)
    failed = [o for o in outcomes if o[2] != "ok"]
    assert len(outcomes) == 60
    # only a call in flight when the replica died may fail, and it fails fast
    assert len(failed) <= 1, failed
    assert all(duration < 5.0 for _, duration, _ in failed), failed
    assert all(o[2] == "ok" for o in outcomes[22:]), [o for o in outcomes[22:] if o[2] != "ok"]
