"""The scaling part of `make bench-peers` (bench/peers_scaling.py): the flat check on hand-made
sizes, the manifest of servers and projects, the JSON and detail lines, and the wrk script that
rotates the bearer."""

from __future__ import annotations

import json
import math

import yaml
from bench import peers_report as report
from bench import peers_scaling as scaling


def point(
    part: str, size: int, p50: float, cpu_ms: float, calls: int = 1000, errors: int = 0
) -> scaling.Point:
    """A five-second window: `calls` calls, mcpd `cpu_ms` per call."""
    return scaling.Point(part, size, calls, errors, None, 5.0, p50, 3 * p50, cpu_ms * calls / 1000)


def test_flat_is_the_largest_size_within_the_limit_of_the_smallest_on_p50_and_cpu() -> None:
    points = [point("tokens", 1, 2.0, 1.5), point("tokens", 100, 9.0, 9.0), point("tokens", 10_000, 2.4, 1.8)]
    check = scaling.flatness(points, "tokens")
    assert check["ok"] is True
    assert check["p50Ratio"] == 1.2 and check["cpuRatio"] == 1.2 and check["value"] == 1.2
    assert "1 to 10,000" in check["name"] and "1.25x" in check["name"]


def test_either_figure_over_the_limit_is_a_miss() -> None:
    slower = [point("servers", 1, 2.0, 1.5), point("servers", 50, 2.6, 1.5)]
    costlier = [point("servers", 1, 2.0, 1.5), point("servers", 50, 2.0, 2.0)]
    assert scaling.flatness(slower, "servers")["ok"] is False
    assert scaling.flatness(costlier, "servers")["value"] == round(2.0 / 1.5, 3)


def test_a_missing_or_failed_end_is_not_measured() -> None:
    assert scaling.flatness([point("tokens", 1, 2.0, 1.5)], "tokens")["ok"] is None
    broken = [point("tokens", 1, 2.0, 1.5), scaling.failed("tokens", 10_000, "wrk failed")]
    assert scaling.flatness(broken, "tokens") | {"name": ""} == {"name": "", "value": None, "ok": None}


def test_the_checks_replace_the_not_measured_line() -> None:
    checks = scaling.checks([point("tokens", 1, 2.0, 1.5), point("tokens", 10_000, 2.0, 1.5)])
    names = [c["name"] for c in report.targets([], "wrk", None, checks)]
    assert not set(report.UNMEASURED) & set(names)
    assert [c["ok"] for c in checks] == [True, None]
    assert any(line.startswith("MET          scaling: tokens") for line in report.verdicts(checks))


def test_the_manifest_has_the_servers_and_a_project_of_the_first_n_per_size() -> None:
    docs = list(yaml.safe_load_all(scaling.manifest(50, (1, 10, 50))))
    servers = [d for d in docs if d["kind"] == "Server"]
    projects = {d["metadata"]["name"]: d["spec"]["servers"] for d in docs if d["kind"] == "Project"}
    assert [s["metadata"]["name"] for s in servers] == [f"s{n:02d}" for n in range(1, 51)]
    assert all(s["spec"]["transport"] == "stdio" for s in servers)
    assert projects["scale-10"] == [f"s{n:02d}" for n in range(1, 11)]
    assert len(projects["scale-50"]) == 50 and projects[scaling.TOKENS_PROJECT] == ["s01"]


def test_json_and_details_carry_every_size() -> None:
    first = {"calls": 99, "seconds": 2.0, "p50Ms": 100.0, "cpuMsPerCall": 14.0}
    listed = {"tools": 700, "firstMs": 90.0, "medianMs": 40.0, "repeats": 10}
    points = [
        scaling.Point("servers", 50, 1000, 0, None, 5.0, 2.0, 9.0, 1.5, tools_list=listed),
        scaling.Point("tokens", 100, 1000, 0, None, 5.0, 2.0, 9.0, 1.5, first_use=first),
        scaling.failed("tokens", 10_000, "wrk exited with 1"),
    ]
    document = json.loads(json.dumps(scaling.to_json(points), allow_nan=False))
    assert [(d["part"], d["size"]) for d in document] == [
        ("servers", 50),
        ("tokens", 100),
        ("tokens", 10_000),
    ]
    assert document[0]["mcpdCpuMsPerCall"] == 1.5 and document[0]["toolsList"]["tools"] == 700
    assert document[1]["firstUse"]["cpuMsPerCall"] == 14.0 and document[2]["p50Ms"] is None
    lines = scaling.details(points)
    assert "cached median 40 ms" in lines[1] and "first use: 99 calls" in lines[2]
    assert lines[-1] == "errors at tokens 10000: wrk exited with 1"
    assert math.isnan(points[2].cpu_ms)


def test_the_rotating_script_sends_a_sessionless_2026_call_with_each_token_in_turn() -> None:
    script = scaling.SCRIPT.read_text()
    assert 'wrk.headers["MCP-Protocol-Version"] = "2026-07-28"' in script
    assert 'headers["Authorization"] = "Bearer " .. token' in script
    assert "Mcp-Session-Id" not in script
    assert "io.write(string.format(\n    'mcpbench {" in script
