"""The targets of `make bench-peers` (bench/peers.py): starting the processes each needs
(bench/procs.py) and telling, at any moment, which process plays which role: the gateway's own
processes by name, and the upstream fixture apart."""

from __future__ import annotations

import asyncio
import functools
import json
import selectors
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conformance.suites import SetupError
from tests.processes import clean_env, descendants

from bench import peers_report as report
from bench.load import CallFailed, Target
from bench.procs import (
    FIXTURE,
    PYTHON,
    Processes,
    Served,
    start_direct,
    start_gateways,
    start_http_upstream,
    start_mcp_proxy,
    start_splits,
    start_supergateway,
)
from bench.wrkload import close, open_checked


@dataclass
class Endpoint:
    """A target under load: where to call, which processes are the gateway (by role) and which is
    the upstream (a pid for http; None: the fixture processes below the gateway), and the file
    where the http upstream counts its connections."""

    name: str
    target: Target
    gateway: list[tuple[str, int]]
    upstream: int | None = None
    counter: Path | None = None

    def roles(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        fixtures: set[int] = set()
        for role, pid in self.gateway:
            below = descendants(pid)
            mine = {p for p in below if _is_fixture(p)}
            found[role] = [pid, *sorted(below - mine)]
            fixtures |= mine
        found[report.UPSTREAM] = [self.upstream] if self.upstream is not None else sorted(fixtures)
        return found


def _is_fixture(pid: int) -> bool:
    try:
        return b"mcp_fixture_server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def start(procs: Processes, targets: list[str], mcp_proxy: Path, supergateway: Path) -> list[Endpoint]:
    """The chosen targets (report.TARGETS' names), in that order, starting only the processes they
    need; `mcp_proxy` and `supergateway` are the installed programs."""
    wanted = set(targets)
    found: dict[str, Endpoint] = {}
    if "direct" in wanted:
        direct = start_direct(procs)
        found["direct"] = Endpoint("direct", _target("direct", direct, "echo"), [], direct.pid)
    for name, starter, program in (
        ("mcp-proxy", start_mcp_proxy, mcp_proxy),
        ("supergateway", start_supergateway, supergateway),
    ):
        if name in wanted:
            if not program.exists():
                raise SetupError(f"{program} is not installed: run `make bench-peers`")
            peer = starter(procs, program)
            found[name] = Endpoint(name, _target(name, peer, "echo"), [(name, peer.pid)])
    if wanted & set(report.MCPCTL):
        counter = procs.workdir / "upstream-connections"
        http = start_http_upstream(procs, counter) if wanted & {"embedded-http", "split-http"} else None
        gateways = start_gateways(procs, http_upstream=http.url if http else None)
        splits = start_splits(procs, *gateways) if wanted & {"split-stdio", "split-http"} else []
        modes: list[tuple[str, list[Served]]] = [("embedded", gateways), ("split", splits)]
        for mode, endpoints in modes:
            for kind, endpoint in zip(("stdio", "http"), endpoints, strict=False):
                name = f"{mode}-{kind}"
                roles = [("mcplocal", endpoint.pid), ("mcpd", endpoint.others[0])] if mode == "split" else []
                upstream = http.pid if kind == "http" and http else None
                found[name] = Endpoint(
                    name,
                    _target(name, endpoint, "fx__echo" if kind == "stdio" else "fxh__echo"),
                    roles or [("mcpd", endpoint.pid)],
                    upstream,
                    counter if kind == "http" else None,
                )
    return [found[name] for name in targets]


def _target(name: str, served: Served, tool: str) -> Target:
    return Target(name, served.url, served.token, tool)


async def check(endpoint: Endpoint) -> None:
    """Fails setup unless the target answers echo with the text it was sent."""
    try:
        await close(await open_checked(endpoint.target))
    except (CallFailed, OSError) as exc:
        raise SetupError(f"{endpoint.name} does not answer echo correctly: {exc}") from exc


COLD_TARGETS = ("split-stdio", "embedded-stdio", "mcp-proxy", "supergateway")  # mcplocal before mcpd
COLD_SECONDS = 60.0
COLD_PAUSE_SECONDS = 1.0  # before each restart: what the previous process started is gone


def cold_starts(procs: Processes, endpoints: list[Endpoint]) -> dict[str, float]:
    """Seconds from starting each target's front process again (mcplocal, mcpd, the peer; data and
    install warm) to its first correct echo, the median of report.COLD_RESTARTS restarts, and the
    fixture's own start beside mcpd's; after the measurements, since it restarts them. The previous
    process's stop is not counted (it was, before 2026-12-01: mcpd's graceful shutdown added ~0.6 s
    to its figure, the peers' quick exits little)."""
    by_name = {e.name: e for e in endpoints}
    found = {}
    for name in COLD_TARGETS:
        if (endpoint := by_name.get(name)) is not None:
            found[name] = _median_of_restarts(functools.partial(cold_start, procs, endpoint))
    if "embedded-stdio" in found:
        found[report.UPSTREAM_ALONE] = _median_of_restarts(upstream_cold_start)
    return found


def _median_of_restarts(measure: Callable[[], float]) -> float:
    seconds = []
    for _ in range(report.COLD_RESTARTS):
        time.sleep(COLD_PAUSE_SECONDS)
        seconds.append(measure())
    return round(statistics.median(seconds), 2)


def upstream_cold_start(deadline_seconds: float = COLD_SECONDS) -> float:
    """Seconds from exec to the fixture's answer to `tools/call echo` over stdio (`initialize`,
    `notifications/initialized` and the call written at once), started as a supervisor starts it
    (bytecode cached, like the targets). A gateway that spawns it on its own start cannot answer its
    first call sooner: mcpd's cold start (embedded-stdio) is this plus the moment it spawns it."""
    hello = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    }
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        },
    ]
    env = {k: v for k, v in clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    began = time.monotonic()
    process = subprocess.Popen(
        [PYTHON, str(FIXTURE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write("".join(json.dumps(line) + "\n" for line in lines).encode())
        process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() - began < deadline_seconds:
                if not selector.select(timeout=0.5):
                    continue
                line = process.stdout.readline()
                if not line:
                    break
                answer = json.loads(line)
                if answer.get("id") == 2:
                    if answer.get("result", {}).get("content", [{}])[0].get("text") != "x":
                        raise SetupError(f"the fixture answered echo wrongly: {line[:200]!r}")
                    return time.monotonic() - began
        raise SetupError("the fixture did not answer echo over stdio")
    finally:
        process.kill()
        process.communicate()  # reaped, its pipes closed


def cold_start(procs: Processes, endpoint: Endpoint) -> float:
    """Stop the endpoint's front process, start it again the same way, and time from that start to
    its first correct echo."""
    process = procs.restart(endpoint.gateway[0][1])
    began = procs.started_at[process.pid]
    endpoint.gateway[0] = (endpoint.gateway[0][0], process.pid)
    return first_echo(endpoint.target, began + COLD_SECONDS) - began


def first_echo(target: Target, deadline: float) -> float:
    """When the target first answered echo correctly (SetupError at the deadline)."""
    while True:
        try:
            session = asyncio.run(open_checked(target, calls=1))
        except (CallFailed, OSError) as exc:
            if time.monotonic() > deadline:
                raise SetupError(f"{target.name} did not answer echo after a restart: {exc}") from exc
            time.sleep(0.02)
            continue
        answered = time.monotonic()
        asyncio.run(close(session))
        return answered
