"""Run the official MCP conformance suite against the fixture server directly and through the gateway.

    python -m conformance.run [--spec-version V]... [--json] [--check-proxy] [--direct-only] [--work-dir D]

For each spec version (2025-11-25 with @modelcontextprotocol/conformance 0.1.16, 2026-07-28 with
0.2.0-alpha), every server scenario runs against

- direct: the fixture server (tests/fixtures/mcp_fixture_server.py --conformance) over Streamable HTTP;
- gateway: an embedded mcpd whose project `conformance` holds only the fixture, as a `transport: http`
  server (a fixture process of its own), with `toolPrefixMode: never`, at /projects/conformance/mcp,
  reached through conformance.authproxy, which adds the project's McpToken (the suite cannot send an
  Authorization header). HTTP, not stdio: only an HTTP upstream can take a 2026-07-28 request as such
  (envelope, `input_required` answers); a stdio process is locked to the era of its first request,
  which mcpd's shared connection makes 2025-11-25;
- proxy (with --check-proxy): the fixture behind the same auth proxy, which shows the proxy itself
  loses nothing.

It prints one row per scenario (or JSON with every failed check) and exits 1 when a scenario that
passes directly fails through the gateway (or the proxy), or when the direct run could not run at all;
0 otherwise. The work dir keeps each run's results, the suites' output and every process log; a
temporary one is removed on success and kept (its path printed) on failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from conformance.gateway import running_gateway
from conformance.processes import authproxy, fixture_http
from conformance.suites import SUITES, Outcome, SetupError, Suite, check_node, run_suite

DIRECT, PROXY, GATEWAY = "direct", "proxy", "gateway"
DUMMY_TOKEN = "conformance-dummy-token"
SUITE_TIMEOUT = 240.0


@dataclass
class Report:
    suites: list[Suite]
    targets: list[str]
    results: dict[tuple[str, str], dict[str, Outcome]] = field(default_factory=dict)  # (spec, target) → …
    errors: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, dict[str, Outcome | None]]]:
        """(scenario, spec version, outcome per target) for every scenario any target ran."""
        rows = []
        for suite in self.suites:
            names: dict[str, None] = {}
            for target in self.targets:
                names.update(dict.fromkeys(self.results.get((suite.spec_version, target), {})))
            for name in names:
                outcomes = {t: self.results.get((suite.spec_version, t), {}).get(name) for t in self.targets}
                rows.append((name, suite.spec_version, outcomes))
        return rows

    def lost(self) -> list[tuple[str, str, str]]:
        """(scenario, spec version, target): passes directly, does not pass through `target`."""
        lost: list[tuple[str, str, str]] = []
        for name, spec, outcomes in self.rows():
            direct = outcomes[DIRECT]
            if direct is not None and direct.passed:
                lost.extend((name, spec, t) for t in self.targets[1:] if not _passed(outcomes[t]))
        return lost

    def direct_failed_to_run(self) -> bool:
        return any(not self.results.get((s.spec_version, DIRECT)) for s in self.suites)

    def exit_code(self) -> int:
        return 1 if self.direct_failed_to_run() or self.lost() else 0

    def to_json(self) -> dict[str, object]:
        return {
            "suites": [
                {
                    "specVersion": s.spec_version,
                    "package": "@modelcontextprotocol/conformance",
                    "version": s.version(),
                }
                for s in self.suites
            ],
            "targets": self.targets,
            "scenarios": [
                {"scenario": name, "specVersion": spec}
                | {t: (o.to_json() if o is not None else None) for t, o in outcomes.items()}
                for name, spec, outcomes in self.rows()
            ],
            "lost": [{"scenario": n, "specVersion": s, "target": t} for n, s, t in self.lost()],
            "errors": self.errors,
            "exitCode": self.exit_code(),
        }


def _passed(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.passed


def _cell(outcome: Outcome | None) -> str:
    return "-" if outcome is None else ("pass" if outcome.passed else "FAIL")


def render(report: Report) -> str:
    """The table, a summary line per spec version, then why each lost scenario failed."""
    rows = report.rows()
    width = max([len("SCENARIO"), *(len(name) for name, _, _ in rows)])
    header = f"{'SCENARIO':<{width}}  {'VERSION':<10}  " + "  ".join(
        f"{t.upper():<7}" for t in report.targets
    )
    lines = [header.rstrip()]
    for name, spec, outcomes in rows:
        cells = "  ".join(f"{_cell(outcomes[t]):<7}" for t in report.targets)
        lines.append(f"{name:<{width}}  {spec:<10}  {cells}".rstrip())
    lines.append("")
    for suite in report.suites:
        counts = []
        for target in report.targets:
            ran = report.results.get((suite.spec_version, target), {})
            counts.append(f"{target} {sum(o.passed for o in ran.values())}/{len(ran)} passed")
        version = f"@modelcontextprotocol/conformance {suite.version()}"
        lines.append(f"{suite.spec_version} ({version}): " + ", ".join(counts))
    lost = report.lost()
    for name, spec, target in lost:
        outcome = report.results.get((spec, target), {}).get(name)
        why = "no result" if outcome is None else (outcome.failures[0] if outcome.failures else "failed")
        lines.append(f"LOST through the {target}: {name} ({spec}): {why[:200]}")
    lines.extend(f"error: {error}" for error in report.errors)
    if report.direct_failed_to_run():
        lines.append("FAILED: the direct run did not run every suite")
    elif lost:
        through = "/".join(report.targets[1:])
        lines.append(f"FAILED: {len(lost)} scenario run(s) pass directly but not through the {through}")
    else:
        lines.append("OK: nothing that passes directly is lost")
    return "\n".join(lines)


def _run_all(
    suites: Sequence[Suite], url: str, target: str, report: Report, work: Path, timeout: float
) -> None:
    for suite in suites:
        out = work / f"{suite.spec_version}-{target}"
        report.results[(suite.spec_version, target)] = run_suite(suite, url, out, timeout)


def run(suites: Sequence[Suite], work: Path, *, gateway: bool, check_proxy: bool, timeout: float) -> Report:
    targets = [DIRECT, *([PROXY] if check_proxy else []), *([GATEWAY] if gateway else [])]
    report = Report(suites=list(suites), targets=targets)
    try:
        check_node()
        with fixture_http(work) as fixture_url:
            _run_all(suites, fixture_url, DIRECT, report, work, timeout)
            if check_proxy:
                with authproxy(fixture_url, DUMMY_TOKEN, work, "fixture") as proxied:
                    _run_all(suites, proxied, PROXY, report, work, timeout)
    except SetupError as exc:
        report.errors.append(str(exc))
        return report
    if gateway:
        try:
            with ExitStack() as stack:
                upstream = stack.enter_context(fixture_http(work, "upstream"))
                project = stack.enter_context(running_gateway(work, upstream))
                proxied = stack.enter_context(authproxy(project.url, project.token, work, "gateway"))
                _run_all(suites, proxied, GATEWAY, report, work, timeout)
        except SetupError as exc:
            report.errors.append(f"gateway: {exc}")
    return report


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.run", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--spec-version",
        action="append",
        choices=[s.spec_version for s in SUITES],
        help="run only this spec version's suite (repeatable; default: both)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--check-proxy", action="store_true", help="also run through the auth proxy alone")
    parser.add_argument("--direct-only", action="store_true", help="run against the fixture only, no gateway")
    parser.add_argument("--work-dir", type=Path, help="keep results and logs here (default: a temporary dir)")
    parser.add_argument(
        "--suite-timeout",
        type=float,
        default=SUITE_TIMEOUT,
        help=f"seconds per suite run (default {SUITE_TIMEOUT:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    suites = [s for s in SUITES if not args.spec_version or s.spec_version in args.spec_version]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="mcpctl-conformance-"))
    work.mkdir(parents=True, exist_ok=True)
    report = run(
        suites, work, gateway=not args.direct_only, check_proxy=args.check_proxy, timeout=args.suite_timeout
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    code = report.exit_code()
    if args.work_dir is None and code == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"results and logs: {work}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
