"""`make bench-peers`'s arithmetic (bench/wrkload.py, bench/peers_report.py) on recorded and
hand-made measurements: what counts as an error in wrk's output, CPU per call per process with the
upstream kept apart, new connections per call, the ratios, and the issue's MET / MISS lines."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from bench import peers_report as report
from bench.cpu import RoleMeter, process_cpu_seconds
from bench.peers_targets import upstream_cold_start
from bench.spinners import IdleSpinners
from bench.upstream import read_count
from bench.wrkload import MARK, SCRIPT, WrkFailed, parse

# wrk 4.1.0 with bench/wrk/mcp.lua, -t2 -c8 -d3s --latency, against the fixture directly.
RECORDED = """Running 3s test @ http://127.0.0.1:18801/mcp
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.45ms   33.53ms 244.91ms   91.35%
    Req/Sec   319.28    143.91   474.00     75.00%
  Latency Distribution
     50%    9.40ms
     99%  193.17ms
  1915 requests in 3.07s, 764.72KB read
Requests/sec:    624.60
Transfer/sec:    249.42KB
mcpbench {"requests":1915,"duration_us":3065958,"good":1915,"bad_status":0,"bad_body":0,"first_status":0,\
"connect":0,"read":0,"write":0,"timeout":0,"status":0,"p50_us":9404,"p90_us":47020,"p99_us":193174,\
"max_us":244910,"mean_us":21446.8}
"""


def test_wrk_output_gives_good_calls_rate_and_percentiles() -> None:
    result = parse(RECORDED)
    assert (result.good, result.errors, result.first_error) == (1915, 0, None)
    assert result.rps == pytest.approx(1915 / 3.065958)
    assert (result.p50_ms, result.p99_ms) == (9.404, 193.174)


def test_wrong_status_wrong_body_and_socket_errors_all_count_and_are_not_good_calls() -> None:
    recorded = json.loads(RECORDED.splitlines()[-1].removeprefix(MARK))
    recorded |= {"good": 1900, "bad_status": 10, "bad_body": 3, "first_status": 401, "timeout": 2}
    result = parse(MARK + json.dumps(recorded))
    assert (result.good, result.errors) == (1900, 15)
    assert result.first_error == "HTTP 401 x10"
    assert result.rps == pytest.approx(1900 / 3.065958)


def test_output_without_the_summary_line_is_a_failure() -> None:
    with pytest.raises(WrkFailed):
        parse("\n".join(RECORDED.splitlines()[:-1]))


def test_the_lua_script_prints_what_parse_reads() -> None:
    script = SCRIPT.read_text()
    for key in (
        "requests",
        "duration_us",
        "good",
        "bad_status",
        "bad_body",
        "first_status",
        "p50_us",
        "p99_us",
    ):
        assert f'"{key}":' in script
    assert "io.write(string.format(\n    'mcpbench {" in script


def row(
    target: str,
    c: int,
    calls: int,
    cpu: dict[str, float],
    p99_ms: float = 10.0,
    new_connections: int | None = None,
) -> report.Row:
    """A one-second wrk window."""
    return report.Row(target, "wrk", c, calls, 0, None, 1.0, 2.0, p99_ms, cpu, 5, 40, new_connections)


def test_gateway_cpu_per_call_is_every_process_but_the_upstream() -> None:
    split = row("split-http", 8, 500, {"mcplocal": 0.5, "mcpd": 1.0, "upstream": 0.75}, new_connections=5)
    assert split.gateway_ms == pytest.approx(3.0)
    assert split.ms_per_call("mcplocal") == pytest.approx(1.0)
    assert split.ms_per_call("upstream") == pytest.approx(1.5)
    assert split.connections_per_call == pytest.approx(0.01)
    assert math.isnan(row("direct", 8, 500, {"upstream": 0.75}).gateway_ms)
    assert report.failed("direct", "wrk", 8, "boom").rps == 0.0


def measured() -> list[report.Row]:
    return [
        row("direct", 8, 800, {"upstream": 1.0}),
        row("direct", 32, 700, {"upstream": 1.0}),
        row("mcp-proxy", 8, 400, {"mcp-proxy": 0.8, "upstream": 0.5}, p99_ms=20.0),
        row("mcp-proxy", 32, 600, {"mcp-proxy": 0.9, "upstream": 0.5}),
        row("embedded-stdio", 8, 600, {"mcpd": 0.42, "upstream": 0.5}, p99_ms=41.0),
        row("embedded-stdio", 32, 700, {"mcpd": 0.49, "upstream": 0.5}),
        row("embedded-http", 8, 500, {"mcpd": 0.5, "upstream": 0.5}, new_connections=0),
        row("embedded-http", 32, 500, {"mcpd": 0.5, "upstream": 0.5}, new_connections=6),
    ]


def test_targets_take_the_worst_concurrency_and_the_ratios_at_the_named_one() -> None:
    checks = {c["name"]: (c["value"], c["ok"]) for c in report.targets(measured(), "wrk")}
    assert checks["embedded-stdio gateway CPU ms/call <= 0.8"] == (0.7, True)
    assert checks["embedded-stdio req/s / direct at c=32 >= 0.9"] == (1.0, True)
    assert checks["embedded-stdio p99 / mcp-proxy's at c=8 <= 2"] == (2.05, False)
    assert checks["embedded-http gateway CPU ms/call <= 1.2"] == (1.0, True)
    assert checks["embedded-http new upstream connections/call <= 0.01"] == (0.012, False)
    # embedded-http at c=32: 1.0 ms/call against mcp-proxy's 1.5
    assert checks["mcpctl CPU/call / mcp-proxy's, worst mode and c <= 1"] == (0.667, True)
    assert checks["split-stdio mcplocal+mcpd CPU ms/call <= 2"] == (None, None)
    assert {c["name"] for c in report.targets([], "wrk")} >= set(report.UNMEASURED)


def test_cold_start_is_the_slowest_of_mcpctl_and_ignores_the_peers() -> None:
    cold = {"split-stdio": 1.3, "embedded-stdio": 0.8, "mcp-proxy": 5.0, report.UPSTREAM_ALONE: 9.0}
    found = {c["name"]: (c["value"], c["ok"]) for c in report.targets([], "wrk", cold)}
    assert found["mcpctl cold start to the first tools/call, worst of mcpd and mcplocal, s <= 1"] == (
        1.3,
        False,
    )


def test_the_fixture_alone_answers_its_first_echo_over_stdio() -> None:
    seconds = upstream_cold_start(deadline_seconds=30.0)
    assert 0 < seconds < 30.0


def test_summary_gives_req_s_ratios_to_direct_and_to_each_peer() -> None:
    lines = report.summary(measured(), "wrk")
    embedded = next(line for line in lines if line.startswith(f"| {report.LABELS['embedded-stdio']} |"))
    cells = [cell.strip() for cell in embedded.split("|")[1:-1]]
    assert cells[1:5] == ["600 / 700", "0.75 / 1", "1.5 / 1.17", "- / -"]
    assert cells[5] == "0.7"  # a range collapses when both levels agree
    assert cells[7] == "0.35-0.47 / -"  # CPU per call over mcp-proxy's: 0.7/2.0 at c=8, 0.7/1.5 at c=32
    assert len(lines) == 2 + 4


def test_the_upstream_count_file_reads_as_zero_until_written(tmp_path: Path) -> None:
    counter = tmp_path / "accepted"
    assert read_count(counter) == 0
    counter.write_bytes(b"%12d\n" % 17)
    assert read_count(counter) == 17


def test_the_json_report_is_strict_json_with_per_process_cpu() -> None:
    broken = report.failed("split-http", "wrk", 8, "boom")
    document = report.to_json({"seconds": 1.0}, [*measured(), broken], [])
    text = json.dumps(document, allow_nan=False)  # NaN would not be JSON
    first = json.loads(text)["rows"][0]
    assert first["cpuMsPerCall"] == {"upstream": 1.25} and first["gatewayCpuMsPerCall"] is None
    assert json.loads(text)["rows"][-1]["firstError"] == "boom"


def test_idle_spinners_run_at_idle_priority_count_nowhere_and_end_with_the_block() -> None:
    with IdleSpinners(count=2) as spinners:
        pids = spinners.pids
        assert len(pids) == 2
        for pid in pids:
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        before = sum(map(process_cpu_seconds, pids))
        counted, ignoring = RoleMeter(lambda: {}), RoleMeter(lambda: {}, ignored=pids)
        with counted, ignoring:
            time.sleep(0.5)  # the spinners take whatever CPU nothing else wants (the suite may)
        spun = sum(map(process_cpu_seconds, pids)) - before
        # the same window with and without them: the difference is theirs, to a clock tick or two
        assert counted.other - ignoring.other == pytest.approx(spun, abs=0.05)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped
