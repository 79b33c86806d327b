"""`make bench`: tools/call throughput and latency of the fixture upstream, directly, through mcpd and
(`--split`) through `mcplocal serve` in front of mcpd.

    python -m bench.run [--concurrency 1,8,32] [--count 2000] [--seconds 20] [--warmup 64]
                        [--era legacy|2026-07-28] [--client wire|httpx|sdk] [--split] [--json] [--profile DIR]

What is compared. "direct" is the fixture server (tests/fixtures/mcp_fixture_server.py, the SDK's
MCPServer) serving Streamable HTTP itself. "gateway" is an all-in-one mcpd (temporary data dir,
SQLite) whose project `bench` holds the same fixture as a supervised stdio server `fx`; calls go to
`/projects/bench/mcp` with an McpToken. Both are called by the same load generator, on 127.0.0.1, with
the same tool (`echo`, `fx__echo` through the gateway) and payload, so the difference is what the
gateway adds: the HTTP endpoint, token check, routing, audit and the stdio hop to the upstream.

How. For each concurrency c and each target (direct first, then gateway, so drift hits both), c
client sessions are opened (the era's handshake), warmed up with `--warmup` calls in all, then call
`echo` until `--count` calls were issued or `--seconds` passed, whichever comes first; the calls in
flight at the deadline are finished and counted. Every call's latency is recorded and its answer
checked (the echoed text). req/s = completed calls / elapsed; p50/p95/p99 by nearest rank. Per c the
report gives gateway/direct throughput and the p50 overhead (gateway p50 - direct p50), and checks the
targets: at c=8 gateway throughput ≥ 0.5 x direct, at c=1 p50 overhead ≤ 3 ms. A miss is printed as
MISS; the exit status stays 0 (this is a measurement, not a test).

The load generator. Python's clients are expensive per request, and on a 2-core machine every cycle
the client burns is taken from the servers being measured. Measured on the direct fixture at c=8
(legacy era): the SDK's `mcp.Client` reached ~360 req/s and was itself the limit; raw JSON-RPC POSTs
through httpx2 reached ~580 req/s with the generator at ~45% of a core (httpx2/httpcore2 were 70% of
its samples); the default `wire` client — the same JSON-RPC messages on one keep-alive HTTP/1.1
connection per session, written and parsed in load.py — reached ~960 req/s at ~15% of a core, with the
fixture at 100% of its core: the server, not the client, sets the number. `--client httpx|sdk` run the
others. The `cpu %` column says where the CPU went during a level (generator / server processes /
everything else on the machine, in percent of one core); a large "other" means the level shared the
machine and its numbers are noisy.

`--profile DIR` records each gateway level of mcpd with py-spy (not a project dependency:
`.venv/bin/pip install py-spy`) into DIR/gateway-c<N>.txt, collapsed stacks for flamegraph tools or
speedscope; sampling slows mcpd, so those levels' numbers are not comparable.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bench.cpu import CpuMeter, Usage
from bench.load import Level, Target, run_level
from bench.procs import (
    BIN,
    Processes,
    Served,
    SetupError,
    start_direct,
    start_gateway,
    start_split,
    with_processes,
)
from bench.report import compare, render, to_json


@dataclass(frozen=True)
class Options:
    concurrency: list[int]
    count: int
    seconds: float
    warmup: int
    era: str
    client: str
    json: bool
    profile: Path | None
    split: bool = False


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--count", type=int, default=2000, help="calls per level at most (default 2000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per level at most (default 20)")
    parser.add_argument("--warmup", type=int, default=64, help="unmeasured calls per level (default 64)")
    parser.add_argument("--era", choices=["legacy", "2026-07-28"], default="legacy", help="protocol era")
    parser.add_argument("--client", choices=["wire", "httpx", "sdk"], default="wire", help="load generator")
    parser.add_argument(
        "--split", action="store_true", help="also through `mcplocal serve` in front of mcpd (split mode)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--profile", type=Path, help="py-spy each gateway level into this directory")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not levels or min(levels) < 1 or args.count < 1 or args.seconds <= 0:
        parser.error("concurrency, count and seconds must be positive")
    return Options(
        levels,
        args.count,
        args.seconds,
        max(0, args.warmup),
        args.era,
        args.client,
        args.json,
        args.profile,
        args.split,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    loadavg = os.getloadavg()[0]
    levels = with_processes("bench", functools.partial(_start_and_measure, options=options))
    if isinstance(levels, int):
        return levels
    comparisons = compare(levels)
    config = _config(options, loadavg)
    print(
        json.dumps(to_json(config, levels, comparisons), indent=2)
        if options.json
        else render(config, levels, comparisons)
    )
    return 0


def _start_and_measure(procs: Processes, options: Options) -> list[tuple[Level, Usage]]:
    direct, gateway = start_direct(procs), start_gateway(procs)
    split = start_split(procs, gateway) if options.split else None
    return _measure(options, direct, gateway, split)


def _measure(
    options: Options, direct: Served, gateway: Served, split: Served | None
) -> list[tuple[Level, Usage]]:
    targets = [
        (Target("direct", direct.url, direct.token, "echo"), direct),
        (Target("gateway", gateway.url, gateway.token, "fx__echo"), gateway),
    ]
    if split is not None:
        targets.append((Target("split", split.url, split.token, "fx__echo"), split))
    results = []
    for concurrency in options.concurrency:
        for target, served in targets:
            profiler = _profile(options, target, concurrency, served.pid)
            meter = CpuMeter(served.pid, *served.others)
            try:
                level = anyio.run(
                    lambda t=target, c=concurrency: run_level(
                        t,
                        options.era,
                        options.client,
                        c,
                        count=options.count,
                        seconds=options.seconds,
                        warmup=options.warmup,
                    )
                )
            finally:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(timeout=30)
            results.append((level, meter.stop()))
            if not options.json:
                print(
                    f"  {target.name:<8} c={concurrency:<3} {level.calls} calls, {level.rps:.0f} req/s",
                    file=sys.stderr,
                )
    return results


def _profile(options: Options, target: Target, concurrency: int, pid: int) -> subprocess.Popen[bytes] | None:
    if options.profile is None or target.name != "gateway":
        return None
    spy = shutil.which("py-spy", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if spy is None:
        raise SetupError("--profile needs py-spy: .venv/bin/pip install py-spy")
    options.profile.mkdir(parents=True, exist_ok=True)
    output = options.profile / f"gateway-c{concurrency}.txt"
    argv = [spy, "record", "--pid", str(pid), "--subprocesses", "--threads"]
    argv += ["--format", "raw", "--rate", "200", "-o", str(output)]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _config(options: Options, loadavg: float) -> dict[str, Any]:
    return {
        "tool": "echo",
        "era": "2025-11-25" if options.era == "legacy" else options.era,
        "client": options.client,
        "count": options.count,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "cpus": os.cpu_count(),
        "loadavg": round(loadavg, 2),
        "profiled": options.profile is not None,
        "split": options.split,
    }


if __name__ == "__main__":
    sys.exit(main())
