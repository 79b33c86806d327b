"""What `make bench-peers` reports: one row per (target, generator, concurrency), the issue-16 summary
table (req/s at each concurrency with the ratios to direct and to each peer, CPU per call per
process), the detail lines, and the issue's "Done when" targets as MET / MISS lines.

CPU per call is the figure least sensitive to a shared machine: other processes slow the target
down (fewer calls per second) but do not make it spend more CPU per call. The upstream's CPU is kept
apart from the gateway's ("gateway" = every process of the target except the upstream fixture).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

UPSTREAM = "upstream"  # the role of the fixture's own processes
DIRECT = "direct"
PEERS = ("mcp-proxy", "supergateway")
MCPCTL = ("embedded-stdio", "embedded-http", "split-stdio", "split-http")
COLD_RESTARTS = 3  # a cold start is the median of this many restarts (one moves by ±0.15 s on 2 cores)
UPSTREAM_ALONE = "fixture alone"  # cold start: the stdio upstream itself (not a target), measured with them
TARGETS = (DIRECT, *PEERS, *MCPCTL)
UNMEASURED = ("flat from 1 to 10,000 tokens and 1 to 50 servers",)  # without the scaling part
LABELS = {
    DIRECT: "direct upstream (SDK server, HTTP)",
    "mcp-proxy": "mcp-proxy (Python bridge, no auth)",
    "supergateway": "supergateway (Node bridge, no auth)",
    "embedded-stdio": "mcpctl embedded, stdio upstream",
    "embedded-http": "mcpctl embedded, http upstream",
    "split-stdio": "mcpctl split (`mcplocal serve`), stdio upstream",
    "split-http": "mcpctl split, http upstream",
}


@dataclass(frozen=True)
class Row:
    """One measurement window. `cpu` is CPU seconds per role in the window (`upstream` is the
    fixture); `new_connections` is what the http upstream accepted in it (None: no http upstream)."""

    target: str
    generator: str
    concurrency: int
    calls: int
    errors: int
    first_error: str | None
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]
    generator_percent: int
    other_percent: int
    new_connections: int | None = None

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def ms_per_call(self, role: str) -> float:
        return 1000 * self.cpu[role] / self.calls if self.calls and role in self.cpu else math.nan

    @property
    def gateway_ms(self) -> float:
        """CPU per call of the target's own processes, the upstream's not included (nan: direct)."""
        roles = [r for r in self.cpu if r != UPSTREAM]
        return 1000 * sum(self.cpu[r] for r in roles) / self.calls if roles and self.calls else math.nan

    @property
    def connections_per_call(self) -> float | None:
        if self.new_connections is None:
            return None
        return self.new_connections / self.calls if self.calls else math.nan


def failed(target: str, generator: str, concurrency: int, error: str) -> Row:
    """A window that broke off (the target stopped answering, wrk failed): no calls, one error."""
    return Row(target, generator, concurrency, 0, 1, error, 0.0, math.nan, math.nan, {}, 0, 0)


def progress(row: Row) -> str:
    return (
        f"{row.target:<15} {row.generator:<4} c={row.concurrency:<3} {row.calls} calls, {row.errors} errors, "
        f"{row.rps:.0f} req/s, gateway {num(row.gateway_ms)} ms/call, other {row.other_percent}%"
    )


def _index(rows: Iterable[Row]) -> dict[tuple[str, str, int], Row]:
    return {(r.target, r.generator, r.concurrency): r for r in rows}


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def num(value: float | None, digits: int = 2) -> str:
    """`value` to at most `digits` decimals without trailing zeros; "-" when not measured."""
    if value is None or math.isnan(value):
        return "-"
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _range(values: list[float], digits: int = 2) -> str:
    found = [v for v in values if not math.isnan(v)]
    if not found:
        return "-"
    low, high = num(min(found), digits), num(max(found), digits)
    return low if low == high else f"{low}-{high}"


def _versus(at: dict[tuple[str, str, int], Row], mine: list[Row | None], other: str) -> str:
    """req/s of `mine` (one row per concurrency) over `other`'s at the same generator and c."""
    if any(m is not None and m.target == other for m in mine):
        return "1"
    ratios = [
        ratio(m.rps, o.rps) if m and (o := at.get((other, m.generator, m.concurrency))) else math.nan
        for m in mine
    ]
    return " / ".join(num(x) for x in ratios)


def _cpu_versus(at: dict[tuple[str, str, int], Row], found: list[Row], peer: str) -> str:
    """Gateway CPU per call of `found` over the peer's, at the same generator and c (a range)."""
    return _range(
        [
            ratio(m.gateway_ms, o.gateway_ms)
            for m in found
            if (o := at.get((peer, m.generator, m.concurrency)))
        ]
    )


def summary(rows: list[Row], generator: str) -> list[str]:
    """The issue's table for one generator, in markdown."""
    at = _index(rows)
    levels = sorted({r.concurrency for r in rows if r.generator == generator})
    targets = [t for t in TARGETS if any(r.target == t and r.generator == generator for r in rows)]
    lines = [
        f"| target | req/s c={' / '.join(map(str, levels))} ({generator}) | x direct | x mcp-proxy "
        "| x supergateway | gateway CPU ms/call | per process | CPU x mcp-proxy / x supergateway "
        "| upstream CPU ms/call | p50 / p99 ms c=8 | new upstream conn/call | errors |",
        "|" + "---|" * 12,
    ]
    for target in targets:
        mine = [at.get((target, generator, c)) for c in levels]
        found = [m for m in mine if m is not None]
        roles = sorted({role for m in found for role in m.cpu if role != UPSTREAM})
        per_process = ", ".join(f"{role} {_range([m.ms_per_call(role) for m in found])}" for role in roles)
        c8 = at.get((target, generator, 8))
        conns = [c for m in found if (c := m.connections_per_call) is not None]
        lines.append(
            f"| {LABELS.get(target, target)} | {' / '.join(num(m.rps if m else math.nan, 0) for m in mine)} "
            f"| {_versus(at, mine, DIRECT)} | {_versus(at, mine, PEERS[0])} | {_versus(at, mine, PEERS[1])} "
            f"| {_range([m.gateway_ms for m in found])} | {per_process or '-'} "
            f"| {_cpu_versus(at, found, PEERS[0])} / {_cpu_versus(at, found, PEERS[1])} "
            f"| {_range([m.ms_per_call(UPSTREAM) for m in found])} "
            f"| {num(c8.p50_ms, 1) + ' / ' + num(c8.p99_ms, 1) if c8 else '-'} "
            f"| {_range(conns, 3) if conns else '-'} | {sum(m.errors for m in found)} |"
        )
    return lines


def details(rows: list[Row]) -> list[str]:
    lines = [
        f"{'target':<15} {'gen':<4} {'c':>3} {'calls':>6} {'err':>4} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'gw ms/call':>10} {'up ms/call':>10} {'conn/call':>9}  cpu % gen/other  "
        "per process ms/call"
    ]
    for r in rows:
        per = ", ".join(f"{role} {num(r.ms_per_call(role))}" for role in r.cpu)
        lines.append(
            f"{r.target:<15} {r.generator:<4} {r.concurrency:>3} {r.calls:>6} {r.errors:>4} {r.rps:>7.0f} "
            f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {num(r.gateway_ms):>10} {num(r.ms_per_call(UPSTREAM)):>10} "
            f"{num(r.connections_per_call, 3):>9}  {r.generator_percent:>3} / {r.other_percent:>3}  {per}"
        )
    lines += [
        f"errors at {r.target} {r.generator} c={r.concurrency}: {r.first_error}" for r in rows if r.errors
    ]
    return lines


def _worst(rows: list[Row], target: str, value: Callable[[Row], float | None]) -> float | None:
    found = [v for r in rows if r.target == target and (v := value(r)) is not None and not math.isnan(v)]
    return max(found) if found else None


def targets(
    rows: list[Row],
    generator: str,
    cold: dict[str, float] | None = None,
    scaling: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Issue 16's "Done when" lines that one run can measure, on `generator`'s rows; `ok` None when a
    target it needs was not measured. CPU and connection limits hold at every concurrency (worst).
    `scaling`: the scaling part's checks (bench/peers_scaling.py), in place of "not measured"."""
    mine = [r for r in rows if r.generator == generator]
    at = _index(mine)

    def rps_ratio(target: str, c: int) -> float | None:
        a, b = at.get((target, generator, c)), at.get((DIRECT, generator, c))
        return ratio(a.rps, b.rps) if a and b else None

    def p99_ratio(target: str, peer: str, c: int) -> float | None:
        a, b = at.get((target, generator, c)), at.get((peer, generator, c))
        return ratio(a.p99_ms, b.p99_ms) if a and b else None

    mine_cold = [s for t, s in (cold or {}).items() if t in MCPCTL]

    def worst_gateway(target: str) -> float | None:
        return _worst(mine, target, lambda r: r.gateway_ms)

    def worst_connections(target: str) -> float | None:
        return _worst(mine, target, lambda r: r.connections_per_call)

    behind = [
        ratio(r.gateway_ms, peer.gateway_ms)
        for r in mine
        if r.target in MCPCTL and (peer := at.get(("mcp-proxy", generator, r.concurrency)))
    ]
    found: list[tuple[str, float | None, float, bool]] = [  # name, value, limit, at most (else at least)
        ("embedded-stdio gateway CPU ms/call", worst_gateway("embedded-stdio"), 0.8, True),
        ("embedded-stdio req/s / direct at c=32", rps_ratio("embedded-stdio", 32), 0.9, False),
        ("embedded-stdio p99 / mcp-proxy's at c=8", p99_ratio("embedded-stdio", "mcp-proxy", 8), 2.0, True),
        ("embedded-http gateway CPU ms/call", worst_gateway("embedded-http"), 1.2, True),
        ("embedded-http new upstream connections/call", worst_connections("embedded-http"), 0.01, True),
        ("split-stdio mcplocal+mcpd CPU ms/call", worst_gateway("split-stdio"), 2.0, True),
        ("split-stdio req/s / direct at c=32", rps_ratio("split-stdio", 32), 0.6, False),
        ("split-http mcplocal+mcpd CPU ms/call", worst_gateway("split-http"), 2.0, True),
        ("split-http req/s / direct at c=32", rps_ratio("split-http", 32), 0.6, False),
        ("split-http new upstream connections/call", worst_connections("split-http"), 0.01, True),
        ("mcpctl CPU/call / mcp-proxy's, worst mode and c", max(behind) if behind else None, 1.0, True),
        (
            "mcpctl cold start to the first tools/call, worst of mcpd and mcplocal, s",
            max(mine_cold, default=None),
            1.0,
            True,
        ),
    ]
    checks = [
        {
            "name": f"{name} {'<=' if at_most else '>='} {limit:g}",
            "value": None if value is None else round(value, 3),
            "ok": None if value is None else (value <= limit if at_most else value >= limit),
        }
        for name, value, limit, at_most in found
    ]
    if scaling is not None:
        return checks + scaling
    return checks + [{"name": name, "value": None, "ok": None} for name in UNMEASURED]


def render(
    config: dict[str, Any], rows: list[Row], checks: list[dict[str, Any]], scaling: list[str] | None = None
) -> str:
    """The report; `scaling` is the scaling part's lines (bench/peers_scaling.py `details`)."""
    others = [r.other_percent for r in rows]
    lines = [
        f"make bench-peers, {config['date']}; {config['machine']}; Python {config['python']}",
        f"{config['runSeconds']} s in all ({config['setupSeconds']} s to start the targets); load average "
        f"at start {' '.join(map(str, config['loadavg']))}; "
        + (
            f"other processes took {min(others)}-{max(others)}% of a core "
            f"(mean {round(sum(others) / len(others))}%) during the windows"
            if others
            else "no target windows"
        ),
        f"mcp-proxy {config['mcp-proxy']}, supergateway {config['supergateway']}; tools/call echo, "
        f"{config['seconds']:g} s per window; gateway CPU = the target's processes but the upstream fixture",
        *(
            ["DIAGNOSTIC (--idle-spinners): no CPU halted during the windows; not the issue's run"]
            if config.get("idleSpinners")
            else []
        ),
        "",
    ]
    if rows:
        for generator in config["generators"]:
            lines += [*summary(rows, generator), ""]
        lines += [*details(rows), ""]
    cold = config.get("coldStartSeconds") or {}
    if cold:
        fronts = {
            "split-stdio": "mcplocal",
            "embedded-stdio": "mcpd",
            UPSTREAM_ALONE: "the stdio upstream by itself: embedded-stdio's floor",
        }
        starts = ", ".join(
            f"{t} {s:g} s" + (f" ({fronts[t]})" if t in fronts else "") for t, s in cold.items()
        )
        how = f"median of {COLD_RESTARTS} restarts, warm install"
        lines += [f"cold start to the first tools/call ({how}): {starts}", ""]
    if scaling:
        lines += [*scaling, ""]
    lines += verdicts(checks)
    return "\n".join(lines)


def verdicts(checks: list[dict[str, Any]]) -> list[str]:
    word = {True: "MET", False: "MISS", None: "not measured"}
    return [
        f"{word[c['ok']]:<12} {c['name']}: {c['value'] if c['value'] is not None else '-'}"
        + (f" (p50 {c['p50Ratio']}x, CPU {c['cpuRatio']}x)" if "p50Ratio" in c else "")
        for c in checks
    ]


def to_json(
    config: dict[str, Any],
    rows: list[Row],
    checks: list[dict[str, Any]],
    scaling: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return {
        "config": config,
        "rows": [
            {
                "target": r.target,
                "generator": r.generator,
                "concurrency": r.concurrency,
                "calls": r.calls,
                "errors": r.errors,
                "firstError": r.first_error,
                "seconds": round(r.seconds, 3),
                "rps": round(r.rps, 1),
                "p50Ms": clean(round(r.p50_ms, 3)),
                "p99Ms": clean(round(r.p99_ms, 3)),
                "cpuSeconds": r.cpu,
                "cpuMsPerCall": {role: clean(round(r.ms_per_call(role), 3)) for role in r.cpu},
                "gatewayCpuMsPerCall": clean(round(r.gateway_ms, 3)),
                "cpuPercent": {"generator": r.generator_percent, "other": r.other_percent},
                "newUpstreamConnections": r.new_connections,
                "connectionsPerCall": clean(r.connections_per_call),
            }
            for r in rows
        ],
        "targets": checks,
        **({"scaling": scaling} if scaling is not None else {}),
    }
