"""The scaling part of `make bench-peers` (issue 16: "still flat from 1 to 10,000 tokens and 1 to 50
servers"): one mcpd of its own on 127.0.0.1, the fixture as 50 supervised stdio servers, and

- tokens: project `scale-tokens` (server s01) with 1, 100, then 10,000 distinct active McpTokens;
  at each size every token not used yet makes one call first (the "first use" pass, at most
  FIRST_USE_SECONDS: the gateway's token check and project view miss, mcpd reads the token and
  records its use; ~14 ms of mcpd CPU each, so not all 9,900 get there in time), then one wrk window
  of `tools/call s01__echo` whose bearer rotates over the tokens that made their first call
  (bench/wrk/rotate.lua, session-less 2026-07-28 POSTs), most recently used first, so what the
  window measures is the gateway at that many tokens, the used ones cached, not the cache's 30 s
  TTL nor first uses (the pass measures those);
- servers: projects `scale-1`, `scale-10`, `scale-50` (s01..sNN, one token each), one window each
  of `tools/call s01__echo`, and a cached `tools/list` over each (the median after the first).

The 10,000 tokens: the first of each project is minted through the CLI (the REST API: about 16 ms
a token on a 2-core machine, so 10,000 would take minutes); the rest are rows written through the
project's storage layer (mcpctl.storage) into mcpd's SQLite database while it runs, each a copy of
that first token (same project, owner and RBAC mode) with a token of its own (core/tokens.py:
`generate`, `token_sha`), as `mint` writes them. mcpd runs with MCPD_MAX_TOKENS_PER_PROJECT=10000,
as an operator with that many tokens per project must set it.

Flat: at the largest size, p50 and mcpd CPU ms per call each at most FLAT x the smallest size's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from conformance.suites import SetupError

from bench.cpu import RoleMeter
from bench.load import ACCEPT, CLIENT_INFO, CallFailed, RawSession, Target, WireTransport, _result
from bench.peers_targets import Endpoint
from bench.procs import FIXTURE, PYTHON, Processes, start_mcpd
from bench.wrkload import WrkFailed, program, run_script
from mcpctl.core import tokens as rules
from mcpctl.storage import tables
from mcpctl.storage.database import Database

ERA = "2026-07-28"
SCRIPT = Path(__file__).resolve().parent / "wrk" / "rotate.lua"
TEXT = "wrk-echo"
TOKEN_SIZES = (1, 100, 10_000)
SERVER_SIZES = (1, 10, 50)
FLAT = 1.25  # the largest size's p50 and CPU per call may be at most this times the smallest's
TOKENS_PROJECT = "scale-tokens"
TOOL = "s01__echo"
RUNNING_SECONDS = 300.0  # 50 Python fixtures starting at once on 2 cores (~60-150 s on a slow VM)
FIRST_USE_SECONDS = 20.0  # the first-use pass of a size, at most (a first use costs mcpd ~12 ms CPU)
FIRST_USE_CONCURRENCY = 8
LIST_REPEATS = 11  # tools/list: the first, then the median of the other 10
MAX_PAGES = 20
WARMUP_CALLS = 32
CALL_SECONDS = 30.0
APPLY_SECONDS = 180.0


@dataclass(frozen=True)
class Point:
    """One size of one part: the window's calls, errors, latencies and mcpd's CPU seconds in it;
    for tokens also the first-use pass (every call a token's first), for servers the tools/list."""

    part: str  # "tokens" or "servers"
    size: int
    calls: int
    errors: int
    first_error: str | None
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float  # mcpd (the gateway; the fixtures apart)
    upstream_seconds: float = 0.0
    other_percent: int = 0
    first_use: dict[str, Any] = field(default_factory=dict)
    tools_list: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.calls if self.calls else math.nan


def failed(part: str, size: int, error: str) -> Point:
    return Point(part, size, 0, 1, error, 0.0, math.nan, math.nan, 0.0)


def flatness(points: list[Point], part: str) -> dict[str, Any]:
    """The part's check: p50 and CPU per call at its largest size over its smallest's; `ok` None when
    either end was not measured (or had errors)."""
    mine = sorted((p for p in points if p.part == part), key=lambda p: p.size)
    sizes = f"{mine[0].size:,} to {mine[-1].size:,}" if mine else "-"
    name = f"scaling: {part} {sizes} flat (p50 and mcpd CPU ms/call at the largest <= {FLAT:g}x the smallest)"
    if len(mine) < 2 or any(p.errors or not p.calls for p in (mine[0], mine[-1])):
        return {"name": name, "value": None, "ok": None}
    low, high = mine[0], mine[-1]
    p50 = high.p50_ms / low.p50_ms if low.p50_ms else math.nan
    cpu = high.cpu_ms / low.cpu_ms if low.cpu_ms else math.nan
    worst = max(p50, cpu)
    return {
        "name": name,
        "value": round(worst, 3),
        "ok": bool(worst <= FLAT),
        "p50Ratio": round(p50, 3),
        "cpuRatio": round(cpu, 3),
    }


def checks(points: list[Point]) -> list[dict[str, Any]]:
    return [flatness(points, "tokens"), flatness(points, "servers")]


def num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def details(points: list[Point]) -> list[str]:
    """The scaling table, one line per size."""
    lines = [
        f"{'part':<8} {'size':>6} {'calls':>6} {'err':>4} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'mcpd ms/call':>12} {'up ms/call':>10} {'other %':>7}  first use / tools/list"
    ]
    for p in points:
        extra = ""
        if p.first_use:
            f = p.first_use
            extra = (
                f"first use: {f['calls']} calls in {num(f['seconds'], 1)} s, p50 {num(f['p50Ms'])} ms, "
                f"mcpd {num(f['cpuMsPerCall'])} ms/call"
            )
        if p.tools_list:
            t = p.tools_list
            extra = (
                f"tools/list ({t['tools']} tools): first {num(t['firstMs'], 1)} ms, "
                f"cached median {num(t['medianMs'], 1)} ms"
            )
        up = 1000 * p.upstream_seconds / p.calls if p.calls else math.nan
        lines.append(
            f"{p.part:<8} {p.size:>6} {p.calls:>6} {p.errors:>4} {p.rps:>6.0f} {num(p.p50_ms):>7} "
            f"{num(p.p99_ms):>7} {num(p.cpu_ms):>12} {num(up):>10} {p.other_percent:>7}  {extra}"
        )
    lines += [f"errors at {p.part} {p.size}: {p.first_error}" for p in points if p.errors]
    return lines


def to_json(points: list[Point]) -> list[dict[str, Any]]:
    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 3)

    return [
        {
            "part": p.part,
            "size": p.size,
            "calls": p.calls,
            "errors": p.errors,
            "firstError": p.first_error,
            "seconds": round(p.seconds, 3),
            "rps": round(p.rps, 1),
            "p50Ms": clean(p.p50_ms),
            "p99Ms": clean(p.p99_ms),
            "mcpdCpuSeconds": round(p.cpu_seconds, 3),
            "mcpdCpuMsPerCall": clean(p.cpu_ms),
            "upstreamCpuMsPerCall": clean(1000 * p.upstream_seconds / p.calls if p.calls else math.nan),
            "otherPercent": p.other_percent,
            **({"firstUse": p.first_use} if p.first_use else {}),
            **({"toolsList": p.tools_list} if p.tools_list else {}),
        }
        for p in points
    ]


# ---- setup -----------------------------------------------------------------------------------------


def server_name(n: int) -> str:
    return f"s{n:02d}"


def manifest(servers: int, sizes: tuple[int, ...]) -> str:
    """`mcpctl apply` input: the fixture as stdio servers s01..sNN, a project `scale-N` of the first
    N per size, and the tokens project (s01)."""
    docs = [
        {
            "kind": "Server",
            "metadata": {"name": server_name(n)},
            "spec": {"transport": "stdio", "command": PYTHON, "args": [str(FIXTURE)]},
        }
        for n in range(1, servers + 1)
    ]
    projects = {f"scale-{size}": size for size in sizes} | {TOKENS_PROJECT: 1}
    docs += [
        {
            "kind": "Project",
            "metadata": {"name": name},
            "spec": {"servers": [server_name(n) for n in range(1, size + 1)]},
        }
        for name, size in projects.items()
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


@dataclass
class Setup:
    base: str  # mcpd's URL
    pid: int
    data: Path  # mcpd's data directory
    tokens: dict[str, str]  # project → the token minted through the CLI

    def url(self, project: str) -> str:
        return f"{self.base}/projects/{project}/mcp"

    def endpoint(self, name: str) -> Endpoint:
        return Endpoint(name, Target(name, self.base, None, TOOL), [("mcpd", self.pid)])


def start(procs: Processes, servers: int, sizes: tuple[int, ...], deadline: float) -> Setup:
    """mcpd with `servers` fixture servers, the projects, a token each; every instance RUNNING."""
    base, cli, pid = start_mcpd(procs, MCPD_MAX_TOKENS_PER_PROJECT=str(max(TOKEN_SIZES)))
    path = procs.workdir / "scaling.yaml"
    path.write_text(manifest(servers, sizes))
    # 54 objects while mcpd starts the 50 servers they name: ~30 s on this 2-core VM, when 50
    # Python processes importing the SDK leave mcpd a fiftieth of the machine; so the tokens come
    # after every instance is up, and each request meanwhile has the same long bound
    cli("apply", "-f", str(path), timeout=APPLY_SECONDS)
    while True:
        items: list[dict[str, Any]] = json.loads(
            cli("get", "instances", "-o", "json", timeout=APPLY_SECONDS)
        )["items"]
        running = [
            i
            for i in items
            if i["status"]["status"] == "RUNNING" and i["status"]["healthStatus"] == "healthy"
        ]
        if len(running) >= servers:
            break
        if time.monotonic() > deadline:
            raise SetupError(f"{len(running)} of {servers} fixture servers RUNNING and healthy in time")
        time.sleep(0.5)
    projects = [*(f"scale-{size}" for size in sizes), TOKENS_PROJECT]
    tokens = {p: cli.json("create", "mcptoken", p, "-p", p)["token"] for p in projects}
    return Setup(base, pid, procs.workdir / "mcpd-data", tokens)


async def add_tokens(database: Path, project: str, template: str, count: int) -> list[str]:
    """`count` more active tokens in `project`, rows like the `template` token's (project, owner,
    RBAC mode), written through mcpctl's storage layer; their raw values."""
    db = Database(f"sqlite+aiosqlite:///{database}")
    made = [rules.generate() for _ in range(count)]
    try:
        async with db.write() as session:
            row = (
                await session.execute(
                    sa.select(tables.McpToken).where(tables.McpToken.token_sha == rules.token_sha(template))
                )
            ).scalar_one()
            taken = (
                await session.execute(
                    sa.select(sa.func.count())
                    .select_from(tables.McpToken)
                    .where(tables.McpToken.project_id == row.project_id)
                )
            ).scalar_one()
            now = tables.utcnow()
            await session.execute(
                sa.insert(tables.McpToken),
                [
                    {
                        "id": tables.new_id(),
                        "name": f"scale-{taken + n:05d}",
                        "active_name": f"scale-{taken + n:05d}",
                        "project_id": row.project_id,
                        "token_sha": rules.token_sha(raw),
                        "prefix": rules.display_prefix(raw),
                        "owner": row.owner,
                        "rbac_mode": row.rbac_mode,
                        "bindings": list(row.bindings),
                        "created_at": now,
                    }
                    for n, raw in enumerate(made)
                ],
            )
    finally:
        await db.dispose()
    return made


# ---- load --------------------------------------------------------------------------------------------


def run_rotating(
    url: str,
    tokens_file: Path,
    concurrency: int,
    seconds: float,
    window: contextlib.AbstractContextManager[Any],
) -> Any:
    """wrk with rotate.lua for `seconds`; `window` is entered around wrk alone."""
    threads = min(concurrency, 2)
    argv = [program(), f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
    env = {"MCP_TOKENS_FILE": str(tokens_file), "MCP_THREADS": str(threads), "MCP_TOOL": TOOL}
    return run_script(argv, SCRIPT, url, env, seconds, window)


@dataclass
class Calls:
    """What `calls` did: latencies (s) of the good calls, the tokens that made a call (in the order
    they were sent), errors and the first."""

    latencies: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None


async def calls(url: str, tokens: list[str], concurrency: int, deadline: float) -> Calls:
    """One `tools/call` per token (2026-07-28, session-less, the project's own client over
    `concurrency` keep-alive connections), until every token made one or the deadline passed."""
    queue = iter(enumerate(tokens))
    done = Calls()

    async def worker() -> None:
        wire = WireTransport(url)
        session = RawSession(wire, Target("scaling", url, tokens[0], TOOL), ERA)
        await session.open()
        try:
            for n, token in queue:
                if time.monotonic() > deadline:
                    return
                session.headers["Authorization"] = f"Bearer {token}"
                done.sent.append(token)
                began = time.perf_counter()
                try:
                    await asyncio.wait_for(session.call(f"first-{n}"), CALL_SECONDS)
                except (CallFailed, OSError, TimeoutError, ValueError) as exc:
                    done.errors += 1
                    done.first_error = done.first_error or f"{type(exc).__name__}: {exc}"[:300]
                    continue
                done.latencies.append(time.perf_counter() - began)
        finally:
            await wire.aclose()

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(tokens))))))
    return done


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, in milliseconds."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


async def tools_list(url: str, token: str, repeats: int) -> tuple[int, list[float]]:
    """The whole `tools/list` (2026-07-28, session-less, every page) `repeats` times: (tools in it,
    seconds each listing took)."""
    wire = WireTransport(url)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": ERA,
        "Mcp-Method": "tools/list",
    }
    meta = {
        "io.modelcontextprotocol/protocolVersion": ERA,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    took: list[float] = []
    count = 0
    ids = iter(range(1, repeats * MAX_PAGES + 1))
    try:
        for _ in range(repeats):
            began, count, cursor = time.perf_counter(), 0, None
            for _page in range(MAX_PAGES):
                n = next(ids)
                params: dict[str, Any] = {"_meta": meta, **({"cursor": cursor} if cursor else {})}
                body = json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": params})
                answer = await asyncio.wait_for(wire.request("POST", headers, body.encode()), CALL_SECONDS)
                result = _result(answer, n)
                count += len(result.get("tools", []))
                cursor = result.get("nextCursor")
                if not cursor:
                    break
            else:
                raise CallFailed(f"tools/list had more than {MAX_PAGES} pages")
            took.append(time.perf_counter() - began)
    finally:
        await wire.aclose()
    return count, took


# ---- the part -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    seconds: float
    concurrency: int
    token_sizes: tuple[int, ...] = TOKEN_SIZES
    server_sizes: tuple[int, ...] = SERVER_SIZES


def measure(procs: Processes, plan: Plan, log: Callable[[str], None]) -> list[Point]:
    """Start the scaling mcpd and measure every size; a size that breaks is a failed point."""
    began = time.monotonic()
    setup = start(procs, max(plan.server_sizes), plan.server_sizes, began + RUNNING_SECONDS)
    up = time.monotonic() - began
    log(f"scaling: mcpd with {max(plan.server_sizes)} fixture servers up after {up:.0f} s")
    points = []
    for size in plan.server_sizes:
        points.append(_guarded("servers", size, functools.partial(_servers, procs, setup, size, plan), log))
    used: list[str] = []  # the tokens of the tokens project that made a call, in the order they did
    for size in plan.token_sizes:
        points.append(
            _guarded("tokens", size, functools.partial(_tokens, procs, setup, size, plan, used), log)
        )
    return points


def _guarded(part: str, size: int, run: Callable[[], Point], log: Callable[[str], None]) -> Point:
    try:
        point = run()
    except (
        SetupError,
        WrkFailed,
        CallFailed,
        OSError,
        subprocess.SubprocessError,
        TimeoutError,
        sa.exc.SQLAlchemyError,  # writing the tokens into mcpd's database
    ) as exc:
        point = failed(part, size, f"{type(exc).__name__}: {exc}"[:300])
    log(
        f"scaling {part} {size:>6}: {point.calls} calls, {point.errors} errors, p50 {num(point.p50_ms)} ms, "
        f"mcpd {num(point.cpu_ms)} ms/call"
    )
    return point


def _window(
    procs: Processes, setup: Setup, project: str, tokens: list[str], part: str, size: int, plan: Plan
) -> Point:
    """One wrk window rotating over `tokens` (written most recently used first)."""
    path = procs.workdir / f"tokens-{project}-{size}.txt"
    path.write_text("\n".join(tokens) + "\n")
    meter = RoleMeter(setup.endpoint(project).roles)
    done = run_rotating(setup.url(project), path, plan.concurrency, plan.seconds, meter)
    return Point(
        part,
        size,
        done.good,
        done.errors,
        done.first_error,
        done.seconds,
        done.p50_ms,
        done.p99_ms,
        meter.seconds.get("mcpd", 0.0),
        meter.seconds.get("upstream", 0.0),
        meter.percent(meter.other),
    )


def _servers(procs: Processes, setup: Setup, size: int, plan: Plan) -> Point:
    project = f"scale-{size}"
    token = setup.tokens[project]
    url = setup.url(project)
    warm = asyncio.run(calls(url, [token] * WARMUP_CALLS, 4, time.monotonic() + 60))
    if warm.errors:
        raise CallFailed(f"{project} does not answer {TOOL} correctly: {warm.first_error}")
    count, took = asyncio.run(tools_list(url, token, LIST_REPEATS))
    point = _window(procs, setup, project, [token], "servers", size, plan)
    listed = {
        "tools": count,
        "firstMs": round(took[0] * 1000, 2),
        "medianMs": round(statistics.median(took[1:]) * 1000, 2) if len(took) > 1 else None,
        "repeats": len(took) - 1,
    }
    return dataclasses.replace(point, tools_list=listed)


def _tokens(procs: Processes, setup: Setup, size: int, plan: Plan, used: list[str]) -> Point:
    """`size` active tokens in the tokens project; the new ones make their first call, then the window
    rotates over those that made it, most recently used first."""
    project = TOKENS_PROJECT
    url = setup.url(project)
    if not used:
        used.append(setup.tokens[project])
    new = size - len(used)
    fresh = asyncio.run(add_tokens(setup.data / "mcpd.db", project, used[0], new)) if new > 0 else []
    first_use: dict[str, Any] = {}
    unused: list[str] = []
    if fresh:
        meter = RoleMeter(setup.endpoint(project).roles)
        with meter:
            began = time.monotonic()
            done = asyncio.run(calls(url, fresh, FIRST_USE_CONCURRENCY, began + FIRST_USE_SECONDS))
            took = time.monotonic() - began
        latencies, made = done.latencies, len(done.latencies)
        first_use = {
            "calls": made,
            "errors": done.errors,
            "firstError": done.first_error,
            "seconds": round(took, 2),
            "concurrency": FIRST_USE_CONCURRENCY,
            "p50Ms": round(percentile(latencies, 0.5), 3) if latencies else None,
            "p99Ms": round(percentile(latencies, 0.99), 3) if latencies else None,
            "cpuMsPerCall": round(1000 * meter.seconds.get("mcpd", 0.0) / made, 3) if made else None,
            "tokensLeft": len(fresh) - len(done.sent),  # no first call within FIRST_USE_SECONDS
        }
        used.extend(done.sent)
        sent = set(done.sent)
        unused = [t for t in fresh if t not in sent]
    else:
        warm = asyncio.run(calls(url, used * max(1, WARMUP_CALLS // len(used)), 4, time.monotonic() + 60))
        if warm.errors:
            raise CallFailed(f"{project} does not answer {TOOL} correctly: {warm.first_error}")
    # only the tokens that made their first call: a window longer than the pass reached would
    # otherwise go on to first uses (~7 ms of mcpd CPU each), which the pass measures apart
    point = _window(procs, setup, project, list(reversed(used)), "tokens", size, plan)
    used.extend(unused)  # the next size's pass is for its own new tokens
    return dataclasses.replace(point, first_use=first_use)
