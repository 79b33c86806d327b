"""The benchmark's output: a table per level, gateway/direct per concurrency, and the two targets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.cpu import Usage
from bench.load import Level

RATIO_AT, RATIO_MIN = 8, 0.5  # at c=8, gateway throughput ≥ 0.5 x direct
OVERHEAD_AT, OVERHEAD_MAX_MS = 1, 3.0  # at c=1, gateway p50 - direct p50 ≤ 3 ms


@dataclass(frozen=True)
class Comparison:
    concurrency: int
    ratio: float  # gateway req/s / direct req/s
    overhead_ms: float  # gateway p50 - direct p50


def compare(levels: list[tuple[Level, Usage]]) -> list[Comparison]:
    by_key = {(level.target, level.concurrency): level for level, _ in levels}
    found = []
    for concurrency in dict.fromkeys(level.concurrency for level, _ in levels):
        direct, gateway = by_key.get(("direct", concurrency)), by_key.get(("gateway", concurrency))
        if direct is None or gateway is None:
            continue
        ratio = gateway.rps / direct.rps if direct.rps else math.nan
        found.append(Comparison(concurrency, ratio, gateway.percentile(0.5) - direct.percentile(0.5)))
    return found


def targets(comparisons: list[Comparison]) -> list[dict[str, Any]]:
    """Each target with its measured value; `ok` is None when that concurrency was not measured."""
    at = {c.concurrency: c for c in comparisons}
    ratio, overhead = at.get(RATIO_AT), at.get(OVERHEAD_AT)
    return [
        {
            "name": f"c={RATIO_AT} gateway/direct req/s >= {RATIO_MIN}",
            "value": None if ratio is None else round(ratio.ratio, 3),
            "ok": None if ratio is None else ratio.ratio >= RATIO_MIN,
        },
        {
            "name": f"c={OVERHEAD_AT} p50 overhead <= {OVERHEAD_MAX_MS:g} ms",
            "value": None if overhead is None else round(overhead.overhead_ms, 3),
            "ok": None if overhead is None else overhead.overhead_ms <= OVERHEAD_MAX_MS,
        },
    ]


def _ms_per_call(level: Level, usage: Usage) -> float:
    """CPU the server's processes spent per completed call (split mode: mcplocal, mcpd and the
    upstream; otherwise the endpoint and its upstream)."""
    return 1000 * usage.server_seconds / level.calls if level.calls else math.nan


def _verdict(ok: bool | None) -> str:
    return {True: "OK", False: "MISS", None: "not measured"}[ok]


def render(config: dict[str, Any], levels: list[tuple[Level, Usage]], comparisons: list[Comparison]) -> str:
    lines = [
        f"tools/call {config['tool']}, protocol {config['era']}, client {config['client']}, "
        f"per level: {config['warmup']} warm-up calls, then <= {config['count']} calls "
        f"or <= {config['seconds']:g} s; {config['cpus']} CPUs, load average {config['loadavg']:g} at start"
        + (" (profiled: numbers perturbed)" if config["profiled"] else ""),
        "",
        f"{'target':<8} {'c':>3} {'calls':>6} {'errors':>6} {'req/s':>8} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  cpu % gen/server/other  server cpu ms/call",
    ]
    for level, usage in levels:
        lines.append(
            f"{level.target:<8} {level.concurrency:>3} {level.calls:>6} {level.errors:>6} {level.rps:>8.1f} "
            f"{level.percentile(0.5):>8.2f} {level.percentile(0.95):>8.2f} {level.percentile(0.99):>8.2f}"
            f"  {usage.generator:>3} / {usage.server:>3} / {usage.other:>3}"
            f"  {_ms_per_call(level, usage):>18.2f}"
        )
    lines += ["", f"{'c':>3}  {'gateway/direct req/s':>20}  {'p50 overhead ms':>15}"]
    lines += [f"{c.concurrency:>3}  {c.ratio:>20.2f}  {c.overhead_ms:>+15.2f}" for c in comparisons]
    lines.append("")
    lines += [f"target {t['name']}: {t['value']} {_verdict(t['ok'])}" for t in targets(comparisons)]
    errors = [(level, level.first_error) for level, _ in levels if level.errors]
    lines += [
        f"errors at {level.target} c={level.concurrency}: {level.errors}, first: {first}"
        for level, first in errors
    ]
    return "\n".join(lines)


def to_json(
    config: dict[str, Any], levels: list[tuple[Level, Usage]], comparisons: list[Comparison]
) -> dict[str, Any]:
    def ms(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 3)

    return {
        "config": config,
        "levels": [
            {
                "target": level.target,
                "concurrency": level.concurrency,
                "calls": level.calls,
                "errors": level.errors,
                "firstError": level.first_error,
                "seconds": round(level.elapsed, 3),
                "rps": round(level.rps, 1),
                "p50Ms": ms(level.percentile(0.5)),
                "p95Ms": ms(level.percentile(0.95)),
                "p99Ms": ms(level.percentile(0.99)),
                "cpuPercent": {"generator": usage.generator, "server": usage.server, "other": usage.other},
                "serverCpuMsPerCall": ms(_ms_per_call(level, usage)),
            }
            for level, usage in levels
        ],
        "comparisons": [
            {
                "concurrency": c.concurrency,
                "rpsRatio": round(c.ratio, 3),
                "p50OverheadMs": round(c.overhead_ms, 3),
            }
            for c in comparisons
        ],
        "targets": targets(comparisons),
    }
