"""`make bench-peers`: mcpctl against the fixture upstream directly and against two peer gateways,
in one run, with the same upstream, tool and payload (issue 16, docs/performance.md).

    python -m bench.peers [--targets direct,mcp-proxy,...,scaling] [--concurrency 1,8,32] [--seconds 5]
                          [--generators wrk,wire] [--count 20000] [--scaling-concurrency 1]
                          [--idle-spinners] [--json] [--save FILE]

Targets, all on 127.0.0.1 (bench/procs.py starts them):
    direct          the fixture (tests/fixtures/mcp_fixture_server.py) serving Streamable HTTP itself
    mcp-proxy       mcp-proxy (PyPI, pinned in the Makefile) bridging the stdio fixture, stateful
    supergateway    supergateway (npm, pinned) bridging the stdio fixture, `--stateful`
    embedded-stdio  mcpd's project endpoint, the fixture as a supervised stdio server
    embedded-http   mcpd's project endpoint, the fixture over http (its own process)
    split-stdio     `mcplocal serve` in front of mcpd, stdio upstream
    split-http      `mcplocal serve` in front of mcpd, http upstream
    scaling         not a target: the scaling part (bench/peers_scaling.py), an mcpd of its own with
                    1, 100, 10,000 McpTokens and projects of 1, 10, 50 servers; `--targets scaling`
                    runs it alone, a --targets list without it skips it

Before anything is measured every target must answer `echo` with the text it was given. Then, per
concurrency c and target (in that order, so drift hits every target alike), each generator runs a
window of `--seconds`: wrk (bench/wrkload.py: one session, c connections) and the project's `wire`
client (bench/load.py: c sessions, a keep-alive connection each, bounded by --count too). In each
window: calls (answered 200 with the echoed text), errors, req/s, p50/p99, the CPU seconds of each
process of the target (bench/cpu.py RoleMeter: gateway processes and the upstream fixture apart), the
connections the http upstream accepted (bench/upstream.py), and the share of the machine the other
processes took. Last, the cold start of mcplocal, mcpd and the peers: each restarted on its warm data
until its first correct echo, three times (the median), and the stdio fixture alone. Then the
scaling part, if chosen: one wrk window of `--seconds` per size at `--scaling-concurrency`. A
measurement: the issue's targets print as MET / MISS, exit status 0.

`--idle-spinners` (a diagnostic, not the issue's run) keeps every CPU from halting during the
windows (bench/spinners.py): what halting costs each target is the difference to a run without.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bench import peers_report as report
from bench import peers_scaling as scaling
from bench.cpu import RoleMeter
from bench.load import run_level
from bench.peers_targets import Endpoint, check, cold_starts, start
from bench.procs import ROOT, Processes, SetupError, with_processes
from bench.spinners import IdleSpinners
from bench.upstream import read_count
from bench.wrkload import SETTLE_SECONDS, WrkFailed, close, open_checked, run_wrk

BENCH_DIR = ROOT / ".bench"
WARMUP = 64
WRK_WARMUP_SECONDS = 1.0
SCALING = "scaling"  # in --targets: the scaling part


@dataclass(frozen=True)
class Options:
    targets: list[str]
    concurrency: list[int]
    seconds: float
    count: int
    generators: list[str]
    scaling: bool
    scaling_concurrency: int
    idle_spinners: bool
    json: bool
    save: Path | None
    mcp_proxy: Path
    supergateway: Path


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--targets",
        default=",".join([*report.TARGETS, SCALING]),
        help=f"comma-separated (default: all, and {SCALING}, the scaling part)",
    )
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per window (default 5)")
    parser.add_argument("--count", type=int, default=20000, help="wire client: calls per window at most")
    parser.add_argument("--generators", default="wrk,wire", help="wrk and/or wire (default both)")
    parser.add_argument(
        "--scaling-concurrency", type=int, default=1, help="scaling part: wrk connections (default 1)"
    )
    parser.add_argument(
        "--idle-spinners",
        action="store_true",
        help="diagnostic: keep every CPU from halting during the windows (bench/spinners.py)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--save", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help="where make installed the peers")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    generators = [g for g in args.generators.split(",") if g]
    if unknown := set(targets) - {*report.TARGETS, SCALING}:
        parser.error(f"unknown targets {sorted(unknown)}; known: {', '.join([*report.TARGETS, SCALING])}")
    if not generators or set(generators) - {"wrk", "wire"}:
        parser.error("--generators: wrk, wire or both")
    if not targets or not levels or min(levels) < 1 or args.count < 1 or args.seconds <= 0:
        parser.error("targets, concurrency, count and seconds must be given and positive")
    if args.scaling_concurrency < 1:
        parser.error("--scaling-concurrency must be positive")
    return Options(
        targets=[t for t in report.TARGETS if t in targets],
        concurrency=levels,
        seconds=args.seconds,
        count=args.count,
        generators=generators,
        scaling=SCALING in targets,
        scaling_concurrency=args.scaling_concurrency,
        idle_spinners=args.idle_spinners,
        json=args.json,
        save=args.save,
        mcp_proxy=_installed(args.bench_dir, "mcp-proxy-*/bin/mcp-proxy"),
        supergateway=_installed(args.bench_dir, "node/node_modules/.bin/supergateway"),
    )


def _installed(bench_dir: Path, pattern: str) -> Path:
    found = sorted(bench_dir.glob(pattern))
    return found[-1] if found else bench_dir / pattern


class _Window(contextlib.AbstractContextManager["_Window"]):
    """Around one measured window: the CPU of each role and the connections the upstream accepted."""

    def __init__(self, endpoint: Endpoint, generator: str, concurrency: int, ignored: Sequence[int] = ()):
        self.endpoint, self.generator, self.concurrency = endpoint, generator, concurrency
        self.meter = RoleMeter(endpoint.roles, ignored)
        self.accepted: int | None = None

    def __enter__(self) -> _Window:
        counter = self.endpoint.counter
        self.before = read_count(counter) if counter else 0
        self.meter.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.meter.__exit__(*exc)
        counter = self.endpoint.counter
        self.accepted = read_count(counter) - self.before if counter else None

    def row(
        self, calls: int, errors: int, first: str | None, seconds: float, p50: float, p99: float
    ) -> report.Row:
        meter = self.meter
        return report.Row(
            target=self.endpoint.name,
            generator=self.generator,
            concurrency=self.concurrency,
            calls=calls,
            errors=errors,
            first_error=first,
            seconds=seconds,
            p50_ms=p50,
            p99_ms=p99,
            cpu={role: round(s, 3) for role, s in meter.seconds.items()},
            generator_percent=meter.percent(meter.generator),
            other_percent=meter.percent(meter.other),
            new_connections=self.accepted,
        )


def _measure_wrk(endpoint: Endpoint, concurrency: int, seconds: float, ignored: Sequence[int]) -> report.Row:
    session = asyncio.run(open_checked(endpoint.target))
    try:
        session_id = session.headers.get("Mcp-Session-Id", "")
        # the same load, unmeasured, first: pools grow to c here, not in the window (the wire
        # generator's WARMUP calls do the same), so new connections per call are the steady state's;
        # then a pause for what wrk's stop left behind (calls whose client left, their cancellations)
        run_wrk(endpoint.target, session_id, concurrency, WRK_WARMUP_SECONDS, contextlib.nullcontext())
        time.sleep(SETTLE_SECONDS)
        window = _Window(endpoint, "wrk", concurrency, ignored)
        done = run_wrk(endpoint.target, session_id, concurrency, seconds, window)
    finally:
        asyncio.run(close(session))
    return window.row(done.good, done.errors, done.first_error, done.seconds, done.p50_ms, done.p99_ms)


def _measure_wire(
    endpoint: Endpoint, concurrency: int, options: Options, ignored: Sequence[int]
) -> report.Row:
    window = _Window(endpoint, "wire", concurrency, ignored)
    level = anyio.run(
        lambda: run_level(
            endpoint.target,
            "legacy",
            "wire",
            concurrency,
            count=options.count,
            seconds=options.seconds,
            warmup=WARMUP,
            window=window,
        )
    )
    return window.row(
        level.calls,
        level.errors,
        level.first_error,
        level.elapsed,
        level.percentile(0.5),
        level.percentile(0.99),
    )


def measure(endpoints: list[Endpoint], options: Options, ignored: Sequence[int] = ()) -> list[report.Row]:
    """Every window; `ignored` are processes whose CPU counts nowhere (the idle spinners)."""
    rows = []
    for concurrency in options.concurrency:
        for endpoint in endpoints:
            for generator in options.generators:
                try:
                    if generator == "wrk":
                        row = _measure_wrk(endpoint, concurrency, options.seconds, ignored)
                    else:
                        row = _measure_wire(endpoint, concurrency, options, ignored)
                except Exception as exc:  # a broken window is a result; the other targets still run
                    row = report.failed(endpoint.name, generator, concurrency, _first(exc))
                rows.append(row)
                print(f"  {report.progress(row)}", file=sys.stderr)
    return rows


def _first(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]


def _version(program: Path) -> str:
    try:
        done = subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return "not installed"
    words = (done.stdout.strip() or done.stderr.strip()).split()
    return words[-1] if done.returncode == 0 and words else "?"  # "mcp-proxy 0.13.0", "4.0.0"


def _config(options: Options, loadavg: tuple[float, float, float]) -> dict[str, Any]:
    wanted = set(options.targets)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}",
        "python": platform.python_version(),
        "loadavg": [round(v, 2) for v in loadavg],
        "mcp-proxy": _version(options.mcp_proxy) if "mcp-proxy" in wanted else "-",
        "supergateway": _version(options.supergateway) if "supergateway" in wanted else "-",
        "seconds": options.seconds,
        "count": options.count,
        "concurrency": options.concurrency,
        "generators": options.generators,
        "tool": "echo",
        "idleSpinners": options.idle_spinners,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    loadavg, began = os.getloadavg(), time.monotonic()
    measured = with_processes(
        "bench-peers", functools.partial(_start_and_measure, options=options), WrkFailed
    )
    if isinstance(measured, int):
        return measured
    setup, rows, cold, points, scaled = measured
    config = _config(options, loadavg) | {
        "setupSeconds": round(setup - began),
        "runSeconds": round(time.monotonic() - began),
        "coldStartSeconds": cold,
    }
    if options.scaling:
        config |= {"scalingSeconds": round(scaled), "scalingConcurrency": options.scaling_concurrency}
    checks = report.targets(
        rows,
        "wrk" if "wrk" in options.generators else "wire",
        cold,
        scaling.checks(points) if options.scaling else None,
    )
    document = report.to_json(config, rows, checks, scaling.to_json(points) if options.scaling else None)
    if options.save is not None:
        options.save.write_text(json.dumps(document, indent=2) + "\n")
    lines = _scaling_lines(points, scaled, options) if options.scaling else None
    print(json.dumps(document, indent=2) if options.json else report.render(config, rows, checks, lines))
    return 0


def _scaling_lines(points: list[scaling.Point], seconds: float, options: Options) -> list[str]:
    others = [p.other_percent for p in points if p.calls]
    busy = f"other processes {min(others)}-{max(others)}% of a core; " if others else ""
    return [
        f"Scaling part ({seconds:.0f} s; {busy}an mcpd of its own, the fixture as "
        f"{max(scaling.SERVER_SIZES)} stdio servers; wrk, session-less 2026-07-28 tools/call {scaling.TOOL}, "
        f"c={options.scaling_concurrency}, {options.seconds:g} s per size; tokens: the bearer rotates over "
        "all of the project's tokens, each used once before (first use); flat = p50 and mcpd CPU ms/call "
        f"at the largest size <= {scaling.FLAT:g}x the smallest's):",
        *scaling.details(points),
    ]


def _start_and_measure(
    procs: Processes, options: Options
) -> tuple[float, list[report.Row], dict[str, float], list[scaling.Point], float]:
    """(when every target was up and answering, the rows, the cold starts, the scaling part's points
    and its seconds). The scaling part comes last, with an mcpd of its own."""
    began = time.monotonic()
    endpoints = start(procs, options.targets, options.mcp_proxy, options.supergateway)
    for endpoint in endpoints:
        asyncio.run(check(endpoint))
    up = time.monotonic()
    print(f"  {len(endpoints)} targets up and answering echo after {up - began:.0f} s", file=sys.stderr)
    with IdleSpinners() if options.idle_spinners else contextlib.nullcontext() as spinners:
        rows = measure(endpoints, options, spinners.pids if spinners else ())
    cold = cold_starts(procs, endpoints)
    points: list[scaling.Point] = []
    scaled = time.monotonic()
    if options.scaling:
        plan = scaling.Plan(options.seconds, options.scaling_concurrency)
        try:
            points = scaling.measure(procs, plan, lambda line: print(f"  {line}", file=sys.stderr))
        except SetupError as exc:  # the targets' figures stand; the scaling lines say "not measured"
            print(f"  scaling part not measured: {exc}", file=sys.stderr)
    return up, rows, cold, points, time.monotonic() - scaled


if __name__ == "__main__":
    sys.exit(main())
