"""`mcpctl test mcp`: its usage errors (exit 2 naming the flag, nothing sent), the arguments it makes up
from a schema, the tool-listing rules, the latency percentiles, and the three renderings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import click
import httpx2
import pytest
from click.testing import CliRunner, Result
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from mcpctl.cli.main import cli
from mcpctl.cli.testmcp import runner
from mcpctl.cli.testmcp.options import Options, health_url
from mcpctl.cli.testmcp.render import render_json, render_junit, render_text
from mcpctl.cli.testmcp.report import Report, StepResult, latency_summary, percentile
from mcpctl.cli.testmcp.tools import derive_arguments, listing_problems, tool_name_problem
from mcpctl.cli.testmcp.wire import Exchange, classify, rpc_answer, validation_summary

URL = "http://127.0.0.1:9/mcp"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[Options]:
    """Nothing may run the checks unless a test says so; what would have run is recorded."""
    seen: list[Options] = []

    async def refuse(options: Options) -> Report:
        seen.append(options)
        raise AssertionError("the checks must not run")

    monkeypatch.setattr(runner, "run_checks", refuse)
    monkeypatch.delenv("MCPCTL_TOKEN", raising=False)
    return seen


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["test", "mcp", *args])


# ---- usage errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["not a url"], "URL"),
        (["ftp://example.com/mcp"], "URL"),
        (["http:///mcp"], "URL"),
        (["http://127.0.0.1:99999/mcp"], "URL"),
        ([URL, "--args", '{"a":1}'], "--args: needs --tool"),
        ([URL, "--tool", "echo", "--args", "{nope"], "--args: not valid JSON"),
        ([URL, "--tool", "echo", "--args", "[1, 2]"], "--args: must be a JSON object, got an array"),
        ([URL, "--tool", "echo", "--args", '"hi"'], "--args: must be a JSON object, got a string"),
        ([URL, "--tool", " "], "--tool"),
        ([URL, "--timeout", "0"], "--timeout: must be a positive number"),
        ([URL, "--timeout", "-3"], "--timeout: must be a positive number"),
        ([URL, "--timeout", "nan"], "--timeout: must be a positive number"),
        ([URL, "--repeat", "0"], "--repeat"),
        ([URL, "--header", "no colon"], "--header 'no colon'"),
        ([URL, "--header", "Accept: text/plain"], "--header Accept"),
        ([URL, "--header", "X-A: 1", "--header", "x-a: 2"], "--header x-a: given twice"),
        ([URL, "--token", "t", "--header", "Authorization: Bearer u"], "--header Authorization"),
        ([URL, "--token", "two words"], "--token"),
        ([URL, "--expect-tools", " , ,"], "--expect-tools"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_flag_and_nothing_runs(
    args: list[str], named: str, _no_network: list[Options]
) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert named in result.stderr.splitlines()[0]
    assert _no_network == []


@pytest.mark.parametrize(
    "args",
    [[URL, "--era", "2027-01-01"], [URL, "-o", "yaml"], [URL, "--timeout", "soon"], [URL, "--repeat", "x"]],
)
def test_bad_choices_and_numbers_are_click_usage_errors(args: list[str], _no_network: list[Options]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert _no_network == []


def _report(*steps: StepResult) -> Report:
    return Report(url=URL, steps=list(steps), protocol_version="2025-11-25", duration_ms=12.0)


@pytest.mark.parametrize(("failure", "code"), [(None, 0), ("contract", 2), ("transport", 1), ("auth", 1)])
def test_the_exit_code_follows_the_worst_failure(
    monkeypatch: pytest.MonkeyPatch, failure: Any, code: int
) -> None:
    seen: list[Options] = []

    async def fake(options: Options) -> Report:
        seen.append(options)
        status = "PASS" if failure is None else "FAIL"
        return _report(
            StepResult("connect", "PASS", "ok"),
            StepResult("call", status, "echo", failure=failure),
        )

    monkeypatch.setattr(runner, "run_checks", fake)
    monkeypatch.setenv("MCPCTL_TOKEN", "from-env")
    result = run(URL, "--tool", "echo", "--args", '{"text":"hi"}', "--header", "X-Team: obs", "-o", "json")
    assert result.exit_code == code
    assert json.loads(result.stdout)["exitCode"] == code
    [options] = seen
    assert options.token == "from-env" and options.arguments == {"text": "hi"}
    assert options.request_headers() == {"X-Team": "obs", "Authorization": "Bearer from-env"}
    assert options.request_headers(with_token=False) == {"X-Team": "obs"}


def test_a_contract_and_a_transport_failure_exit_1() -> None:
    report = _report(
        StepResult("tools/list", "FAIL", "dup", failure="contract"),
        StepResult("call", "FAIL", "no answer", failure="transport"),
    )
    assert report.exit_code == 1 and report.failure == "transport"
    assert [s.name for s in report.failed_steps()] == ["tools/list", "call"]


@pytest.mark.parametrize(
    ("url", "health"),
    [
        ("http://127.0.0.1:3000/api/v1/projects/p/servers/s/mcp", "http://127.0.0.1:3000/healthz"),
        ("https://user:pw@mcp.example.com/projects/p/mcp?x=1", "https://mcp.example.com/healthz"),
        ("http://[::1]:3200/mcp", "http://[::1]:3200/healthz"),
    ],
)
def test_the_health_url_is_the_base_of_the_mcp_url(url: str, health: str) -> None:
    assert health_url(url) == health


# ---- arguments from a schema ------------------------------------------------------------------------


def test_only_required_properties_get_values_of_their_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number", "minimum": 0.5, "maximum": 0.9},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "optional": {"type": "string"},
        },
        "required": ["text", "count", "ratio", "flag", "tags"],
    }
    assert derive_arguments(schema) == {
        "text": "test",
        "count": 1,
        "ratio": 0.5,
        "flag": False,
        "tags": ["test"] * 2,
    }


def test_schema_hints_win_over_made_up_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "mode": {"enum": ["fast", "slow"]},
            "unit": {"const": "ms"},
            "level": {"type": "integer", "default": 7},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "minLength": 6, "maxLength": 8},
            "small": {"type": "integer", "exclusiveMaximum": 0},
            "above": {"type": "integer", "exclusiveMinimum": 10},
            "nullable": {"type": ["null", "string"]},
            "either": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]},
        },
        "required": ["mode", "unit", "level", "when", "code", "small", "above", "nullable", "either"],
    }
    assert derive_arguments(schema) == {
        "mode": "fast",
        "unit": "ms",
        "level": 7,
        "when": "2026-01-01T00:00:00Z",
        "code": "testxx",
        "small": -1,
        "above": 11,
        "nullable": "test",
        "either": 3,
    }


def test_nested_objects_and_local_refs_are_followed() -> None:
    schema = {
        "type": "object",
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "properties": {"at": {"$ref": "#/$defs/Point"}, "missing": {"$ref": "#/$defs/Nowhere"}},
        "required": ["at", "missing", "undeclared"],
    }
    assert derive_arguments(schema) == {"at": {"x": 1}, "missing": "test", "undeclared": "test"}


def test_a_self_referencing_schema_ends() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}
    value = derive_arguments(schema)
    depth = 0
    while isinstance(value, dict) and "next" in value:
        value, depth = value["next"], depth + 1
    assert depth < 20


def test_no_required_properties_means_no_arguments() -> None:
    assert derive_arguments({"type": "object", "properties": {"a": {"type": "string"}}}) == {}
    assert derive_arguments({"type": "object"}) == {}


# ---- tool listings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["echo", "get_current_time", "a.b-c", "x" * 128, "Z9"])
def test_valid_tool_names(name: str) -> None:
    assert tool_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "x" * 129, "ünïcode", "a:b"])
def test_invalid_tool_names(name: str) -> None:
    assert tool_name_problem(name) is not None


def test_a_listing_with_duplicates_bad_names_and_bad_schemas_names_each_problem() -> None:
    problems = listing_problems(
        [
            ("echo", {"type": "object"}),
            ("echo", {"type": "object"}),
            ("bad name", {"type": "object"}),
            ("listy", {"type": "array"}),
            ("stringy", "object"),
        ]
    )
    assert problems == [
        "tool name 'bad name' has characters outside [A-Za-z0-9_.-]",
        "tool 'echo' is listed 2 times",
        "tool 'listy': inputSchema has type 'array', not 'object'",
        "tool 'stringy': inputSchema is not a JSON object",
    ]
    assert listing_problems([("echo", {"type": "object"}), ("add", {"type": "object"})]) == []


# ---- latency ----------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 50) == 50 and percentile(samples, 95) == 95 and percentile(samples, 100) == 100
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([7.0], 95) == 7.0
    assert latency_summary([3.0, 1.0, 2.0, 10.0]) == {"p50Ms": 2.0, "p95Ms": 10.0, "maxMs": 10.0}
    with pytest.raises(ValueError):
        percentile([], 50)


# ---- renderings -------------------------------------------------------------------------------------


def _mixed() -> Report:
    return _report(
        StepResult("health", "PASS", "GET …/healthz → 200", 3.2),
        StepResult("session", "PASS", "id issued", 5.0, warnings=["unknown id → 400; the spec says 404"]),
        StepResult("tools/list", "FAIL", "tool 'echo' is listed 2 times", 4.0, failure="contract"),
        StepResult("call", "FAIL", "no answer within 1 s", 1000.0, failure="transport"),
        StepResult("latency", "SKIP", "no --repeat"),
    )


def test_text_names_each_step_and_the_verdict() -> None:
    lines = click.unstyle(render_text(_mixed())).splitlines()
    assert lines[0] == URL
    assert lines[1].split()[:2] == ["PASS", "health"]
    assert "warning: unknown id → 400" in lines[3]
    assert lines[4].split()[:2] == ["FAIL", "tools/list"]
    assert lines[-1].startswith("FAIL") and "transport failure in tools/list, call (exit 1)" in lines[-1]


def test_json_is_one_machine_readable_report() -> None:
    data = json.loads(render_json(_mixed()))
    assert data["result"] == "FAIL" and data["exitCode"] == 1 and data["failure"] == "transport"
    assert data["failedSteps"] == ["tools/list", "call"]
    assert data["steps"][1]["warnings"] == ["unknown id → 400; the spec says 404"]
    assert data["steps"][3] == {
        "name": "call",
        "status": "FAIL",
        "detail": "no answer within 1 s",
        "durationMs": 1000.0,
        "failure": "transport",
        "warnings": [],
        "data": {},
    }


def test_junit_has_a_testcase_per_step_failures_errors_and_skips() -> None:
    root = ET.fromstring(render_junit(_mixed()))
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["tools/list"].find("failure") is not None
    error = cases["call"].find("error")
    assert error is not None and error.get("type") == "transport"
    skipped = cases["latency"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no --repeat"
    assert cases["health"].get("time") == "0.003"


# ---- reading answers, classifying failures ------------------------------------------------------------


def test_an_answer_is_found_in_json_and_in_sse_bodies() -> None:
    answer = {"jsonrpc": "2.0", "id": "p1", "result": {}}
    as_json = httpx2.Response(200, headers={"content-type": "application/json"}, content=json.dumps(answer))
    sse = "event: message\ndata: " + json.dumps({"jsonrpc": "2.0", "method": "x"}) + "\n\n"
    sse += "event: message\ndata: " + json.dumps(answer) + "\n\n"
    as_sse = httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse)
    assert rpc_answer(as_json, "p1") == answer
    assert rpc_answer(as_sse, "p1") == answer
    assert rpc_answer(as_sse, "other") is None


def _exchange(status: int, challenge: str | None = None) -> Exchange:
    headers = {"www-authenticate": challenge} if challenge else {}
    return Exchange("POST", URL, {}, b"", "initialize", status, headers)


def test_failures_are_classified_by_kind() -> None:
    refused = httpx2.ConnectError("All connection attempts failed")
    assert classify(ExceptionGroup("tg", [refused]), [], token=False, timeout=1).kind == "transport"
    assert classify(TimeoutError(), [], token=False, timeout=2.5).detail == "no answer within 2.5 s"
    denied = classify(MCPError(-32603, "x"), [_exchange(401, "Bearer")], token=True, timeout=1)
    assert (denied.kind, denied.detail) == ("auth", "HTTP 401 with the given token; WWW-Authenticate: Bearer")
    wrong_path = classify(MCPError(-32601, "Not Found"), [_exchange(404)], token=False, timeout=1)
    assert wrong_path.kind == "contract" and "HTTP 404" in wrong_path.detail


class _Listing(BaseModel):
    tools: list[dict[str, int]]


def test_schema_complaints_name_the_tool_when_known() -> None:
    with pytest.raises(ValidationError) as caught:
        _Listing.model_validate({"tools": [{"a": 1}, {"b": "x"}]})
    assert (
        validation_summary(caught.value)
        == "tools[1].b: Input should be a valid integer, unable to parse string as an integer"
    )
    assert validation_summary(caught.value, {1: "broken"}).startswith("tool 'broken': b: ")
