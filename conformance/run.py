"""Run the official MCP conformance suite against the fixture server directly and through every gateway
target, and compare at check level.

    python -m conformance.run [--target T]... [--spec-version V]... [--json] [--check-proxy]
                              [--direct-only] [--work-dir D] [--jobs N]

For each spec version (2025-11-25 with @modelcontextprotocol/conformance 0.1.16, 2026-07-28 with
0.2.0-alpha), every server scenario runs against these targets:

- direct: the fixture server (tests/fixtures/mcp_fixture_server.py --conformance) over Streamable HTTP;
- proxy (with --check-proxy): the fixture behind conformance.authproxy alone, which shows the proxy
  itself loses nothing;
- embedded-http, embedded-stdio: mcpd's own project endpoint, /projects/conformance-<transport>/mcp,
  whose project holds only the fixture as a `transport: http` server (a fixture process of its own)
  or as a `transport: stdio` server mcpd runs (conformance/gateway.py);
- serve-http, serve-stdio: the same projects through `mcplocal serve --mcpd-url <that mcpd>`.

The gateway targets are reached through conformance.authproxy (one per endpoint process), which adds
each project's McpToken: the suite cannot send an Authorization header.

One mcpd and one `mcplocal serve` serve all four gateway targets. Targets run in lanes, concurrently
(--jobs): the fixture's (direct, proxy), the http upstream's (embedded-http, then serve-http) and the
stdio upstream's (embedded-stdio, then serve-stdio); within a lane one suite runs at a time, so no two
runs share an upstream at once. mcpd starts while the direct run runs.

A check that passes directly must pass through every target (conformance/checks.py), apart from the
documented differences (conformance/differences.yaml). The run prints one row per scenario, a summary
per target, every lost scenario and check (or, with --json, all of it with every failed check), and
exits 1 when anything that passes directly is lost without a documented reason, or when the direct run
could not run at all; 0 otherwise. The work dir keeps each run's results, the suites' output and every
process log; a temporary one is removed on success and kept (its path printed) on failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from conformance.differences import DIFFERENCES_FILE, DifferencesError, load
from conformance.gateway import HTTP, STDIO, Gateway, running_gateway
from conformance.processes import authproxy, fixture_http, mcplocal_serve
from conformance.report import DIRECT, Report, render
from conformance.suites import SUITES, SetupError, Suite, check_node, run_suite

PROXY = "proxy"
EMBEDDED_HTTP, EMBEDDED_STDIO = "embedded-http", "embedded-stdio"
SERVE_HTTP, SERVE_STDIO = "serve-http", "serve-stdio"
EMBEDDED, SERVE = "embedded", "serve"  # the endpoint process: mcpd itself, or `mcplocal serve`
# Each gateway target: which endpoint process, and the fixture's transport as that project's upstream.
GATEWAY = {
    EMBEDDED_HTTP: (EMBEDDED, HTTP),
    EMBEDDED_STDIO: (EMBEDDED, STDIO),
    SERVE_HTTP: (SERVE, HTTP),
    SERVE_STDIO: (SERVE, STDIO),
}
GATEWAY_TARGETS = tuple(GATEWAY)
TARGETS = (DIRECT, PROXY, *GATEWAY_TARGETS)
# Lanes after the fixture's: each runs its targets one after the other (they share an upstream).
GATEWAY_LANES = ((EMBEDDED_HTTP, SERVE_HTTP), (EMBEDDED_STDIO, SERVE_STDIO))
DUMMY_TOKEN = "conformance-dummy-token"
SUITE_TIMEOUT = 240.0
JOBS = 3


def _run_target(
    suites: Sequence[Suite], url: str, target: str, report: Report, work: Path, timeout: float
) -> None:
    for suite in suites:
        out = work / f"{suite.spec_version}-{target}"
        report.results[(suite.spec_version, target)] = run_suite(suite, url, out, timeout)


def _fixture_lane(
    suites: Sequence[Suite], targets: Sequence[str], report: Report, work: Path, timeout: float
) -> None:
    """direct, then (if asked) proxy, against the fixture started here."""
    try:
        with fixture_http(work) as fixture:
            fixture_url = fixture.listening()
            _run_target(suites, fixture_url, DIRECT, report, work, timeout)
            if PROXY in targets:
                origin = fixture_url.removesuffix("/mcp")
                with authproxy(origin, work, "fixture", token=DUMMY_TOKEN) as proxy:
                    _run_target(suites, f"{proxy.listening()}/mcp", PROXY, report, work, timeout)
    except SetupError as exc:
        report.errors.append(str(exc))


def _gateway_urls(stack: ExitStack, targets: Sequence[str], work: Path) -> dict[str, str]:
    """Start the upstream fixture, mcpd, (if a serve target is asked) `mcplocal serve`, and an auth
    proxy in front of each endpoint process, as much at once as their order allows; the endpoint URL
    of each gateway target in `targets`."""
    upstream = stack.enter_context(fixture_http(work, "upstream"))
    gateway = stack.enter_context(running_gateway(work, upstream.url))
    fronts = {EMBEDDED: gateway.mcpd_url}
    waiting = [upstream]
    if any(GATEWAY[t][0] == SERVE for t in targets if t in GATEWAY):
        serve = stack.enter_context(mcplocal_serve(gateway.mcpd_url, work))
        fronts[SERVE] = serve.url
        waiting.append(serve)
    proxies = {
        front: stack.enter_context(authproxy(origin, work, front, project_tokens=gateway.tokens))
        for front, origin in fronts.items()
    }
    for process in waiting:
        process.listening()
    gateway.wait_running()
    origins = {front: proxy.listening() for front, proxy in proxies.items()}
    return {
        target: origins[front] + Gateway.path(transport)
        for target, (front, transport) in GATEWAY.items()
        if target in targets
    }


def run(
    suites: Sequence[Suite], work: Path, targets: Sequence[str], *, timeout: float, jobs: int = JOBS
) -> Report:
    """Every suite against every target in `targets` (direct always runs: it is the reference)."""
    targets = [t for t in TARGETS if t == DIRECT or t in targets]
    report = Report(suites=list(suites), targets=targets)
    try:
        report.differences = load(DIFFERENCES_FILE, [s.spec_version for s in SUITES], GATEWAY_TARGETS)
        check_node()
    except (SetupError, DifferencesError) as exc:
        report.errors.append(str(exc))
        return report
    lanes = [[t for t in lane if t in targets] for lane in GATEWAY_LANES]
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        running: list[Future[None]] = [pool.submit(_fixture_lane, suites, targets, report, work, timeout)]
        if any(lanes):
            try:
                urls = _gateway_urls(stack, targets, work)
            except SetupError as exc:
                report.errors.append(f"gateway: {exc}")
                urls = {}
            for lane in lanes:
                if lane and urls:
                    running.append(
                        pool.submit(_lane, [(t, urls[t]) for t in lane], suites, report, work, timeout)
                    )
        for future in running:
            future.result()
    return report


def _lane(
    targets: Sequence[tuple[str, str]], suites: Sequence[Suite], report: Report, work: Path, timeout: float
) -> None:
    """One upstream's targets, spec version by spec version (every target's 2025-11-25 run, then
    every 2026-07-28 run): the 2026 suite leaves `input_required` rounds its clients never retry
    parked on the shared instance for MCPLOCAL_INPUT_WAIT_MS, and while a call is parked a log line
    the upstream sends cannot be told apart from another caller's (it is shown to no one), which the
    2025 suite's logging scenario would read as a lost line."""
    for suite in suites:
        for target, url in targets:
            _run_target([suite], url, target, report, work, timeout)


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
    parser.add_argument(
        "--target",
        action="append",
        choices=TARGETS,
        help="run this target (repeatable; default: every gateway target); direct always runs",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--check-proxy", action="store_true", help="also run through the auth proxy alone")
    parser.add_argument("--direct-only", action="store_true", help="run against the fixture only, no gateway")
    parser.add_argument(
        "--jobs",
        type=int,
        default=JOBS,
        help=f"lanes of targets run at once (default {JOBS}; 1: one after another)",
    )
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
    targets = {DIRECT, *(args.target or ([] if args.direct_only else GATEWAY_TARGETS))}
    if args.check_proxy:
        targets.add(PROXY)
    report = run(suites, work, sorted(targets), timeout=args.suite_timeout, jobs=args.jobs)
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    code = report.exit_code()
    if args.work_dir is None and code == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"results and logs: {work}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
