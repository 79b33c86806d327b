"""`mcpctl test mcp` against real endpoints, run as the real CLI: server-everything (streamableHttp), the
fixture server in both protocol eras, a server broken on purpose in one way per path, a server that
never answers, and mcpd's token-authenticated per-server proxy (valid, revoked and no McpToken)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import MCPCTL, Mcpd, _clean_env, _cli_maker, free_port, login_admin
from tests.e2e.upstreams import (
    FIXTURE,
    PYTHON,
    everything_http,
    proxy_url,
    wait_running,
)
from tests.processes import wait_listening

pytestmark = pytest.mark.e2e

BROKEN = FIXTURE.parent / "broken_mcp_server.py"
RUN_TIMEOUT = 30.0


@dataclass
class Run:
    """One `mcpctl test mcp` run: its exit code, its output, and how long it took."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def line(self, step: str) -> str:
        """The text line of one step, e.g. 'PASS  call  12 ms  echo(…) → …'."""
        found = [line for line in self.stdout.splitlines() if line[4:].split()[:1] == [step]]
        assert len(found) == 1, f"no single line for step {step!r} in:\n{self.stdout}"
        return found[0]

    def statuses(self) -> dict[str, str]:
        return {step["name"]: step["status"] for step in self.report()["steps"]}


def _start(args: Sequence[str], env: dict[str, str] | None) -> tuple[subprocess.Popen[str], float]:
    full_env = {**_clean_env(), "NO_COLOR": "1", **(env or {})}
    process = subprocess.Popen(
        [MCPCTL, "test", "mcp", *args],
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, time.monotonic()


def _finish(process: subprocess.Popen[str], started: float) -> Run:
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"mcpctl test mcp did not finish within {RUN_TIMEOUT}s")
    return Run(process.returncode, stdout, stderr, time.monotonic() - started)


def mcpctl_test(*args: str, env: dict[str, str] | None = None) -> Run:
    """`mcpctl test mcp ARGS…`, without colours, and without any MCPCTL_* setting of this environment."""
    return _finish(*_start(args, env))


def text_and_json(*args: str, env: dict[str, str] | None = None) -> tuple[Run, Run]:
    """The same test with text and with JSON output, run side by side."""
    text = _start(args, env)
    as_json = _start([*args, "-o", "json"], env)
    return _finish(*text), _finish(*as_json)


@contextmanager
def serving(script: Path, *args: str) -> Iterator[str]:
    """A Python test server on a free port; yields its base URL and stops it (and only it) after."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, str(script), *args, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, script.name)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def fixture_url() -> Iterator[str]:
    with serving(FIXTURE, "http") as base:
        yield f"{base}/mcp"


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with serving(BROKEN) as base:
        yield base


# ---- real servers pass ---------------------------------------------------------------------------------


def test_server_everything_passes_with_an_echo_call() -> None:
    with everything_http() as url:
        run = mcpctl_test(url, "--tool", "echo", "--args", '{"message":"hi"}')
    assert run.code == 0, run.stdout + run.stderr
    assert run.line("connect").startswith("PASS")
    assert run.line("tools/list").startswith("PASS")
    assert run.line("call").startswith("PASS") and "Echo: hi" in run.line("call")
    assert run.stdout.splitlines()[-1].startswith("PASS")
    assert run.stderr == ""


@pytest.mark.parametrize(
    ("era", "call", "summary"),
    [
        ("legacy", ["--tool", "echo", "--args", '{"text":"hi"}'], '"hi"'),
        ("2026-07-28", ["--tool", "add"], '{"result":2}'),  # arguments made up from the schema: a=1, b=1
    ],
)
def test_fixture_server_passes_in_both_eras(
    fixture_url: str, era: str, call: list[str], summary: str
) -> None:
    run = mcpctl_test(
        fixture_url, "--era", era, *call, "--expect-tools", "echo,add", "--repeat", "3", "-o", "json"
    )
    assert run.code == 0, run.stdout + run.stderr
    report = run.report()
    assert report["result"] == "PASS" and report["exitCode"] == 0
    assert report["protocolVersion"] == ("2025-11-25" if era == "legacy" else "2026-07-28")
    assert report["server"]["name"] == "fixture"
    steps = {step["name"]: step for step in report["steps"]}
    assert [step["name"] for step in report["steps"]] == [
        "health", "connect", "session", "tools/list", "expected-tools", "call", "auth", "latency",
    ]  # fmt: skip
    assert steps["health"]["status"] == "SKIP"  # the fixture serves no /healthz
    assert steps["connect"]["data"]["via"] == ("initialize" if era == "legacy" else "server/discover")
    if era == "legacy":
        assert steps["session"]["status"] == "PASS"
        assert steps["session"]["data"]["unknownIdStatus"] == 404
        assert steps["session"]["data"]["afterDeleteStatus"] == 404
    else:
        assert steps["session"]["status"] == "SKIP"
    assert steps["tools/list"]["data"]["count"] == 14  # `document` and `document_calls` too
    assert steps["call"]["status"] == "PASS" and steps["call"]["detail"].endswith(summary)
    assert steps["auth"]["status"] == "SKIP"
    latency = steps["latency"]["data"]
    assert latency["count"] == 3 and 0 < latency["p50Ms"] <= latency["p95Ms"] <= latency["maxMs"]


# ---- broken servers fail, naming the step ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "args", "kind", "step"),
    [
        ("duplicate-tools", [], "contract", "tools/list"),
        ("bad-schema", [], "contract", "tools/list"),
        ("bad-names", [], "contract", "tools/list"),
        ("endless-pages", [], "contract", "tools/list"),
        ("ok", ["--expect-tools", "echo,missing"], "contract", "expected-tools"),
        ("tool-errors", ["--tool", "echo", "--args", '{"text":"x"}'], "contract", "call"),
        ("session-ignored", [], "contract", "session"),
        ("auth-no-challenge", ["--token", "good-token"], "contract", "auth"),
        ("ok", ["--era", "2026-07-28"], "contract", "connect"),
        ("hang-call", ["--tool", "echo", "--args", '{"text":"x"}', "--timeout", "1"], "transport", "call"),
        ("auth-no-challenge", ["--token", "wrong-token"], "auth", "connect"),
        ("auth-no-challenge", [], "auth", "connect"),
    ],
)
def test_a_broken_server_fails_naming_the_step(
    broken: str, mode: str, args: list[str], kind: str, step: str
) -> None:
    code = 2 if kind == "contract" else 1
    text, as_json = text_and_json(f"{broken}/{mode}/mcp", *args)
    for run in (text, as_json):
        assert run.code == code, run.stdout + run.stderr
        assert run.stderr == ""
    assert text.line(step).startswith("FAIL")
    verdict = text.stdout.splitlines()[-1]
    assert verdict.startswith("FAIL") and f"in {step} (exit {code})" in verdict
    report = as_json.report()
    assert report["result"] == "FAIL" and report["exitCode"] == code
    assert report["failedSteps"] == [step]
    assert report["failure"] == kind


def test_a_paginated_listing_is_followed_to_the_end(broken: str) -> None:
    run = mcpctl_test(
        f"{broken}/paginated/mcp", "--expect-tools", "echo,third", "--tool", "third", "-o", "json"
    )
    assert run.code == 0, run.stdout
    steps = {step["name"]: step for step in run.report()["steps"]}
    assert steps["tools/list"]["data"] == {"count": 3, "pages": 3, "tools": ["echo", "add", "third"]}
    assert steps["health"]["status"] == "PASS"
    assert steps["call"]["data"]["argumentsFrom"] == "schema"


def test_an_unhealthy_server_fails_the_health_step() -> None:
    with serving(BROKEN, "--unhealthy") as base:
        run = mcpctl_test(f"{base}/ok/mcp")
    assert run.code == 2, run.stdout
    assert run.line("health").startswith("FAIL") and "503" in run.line("health")
    assert run.line("call").startswith("SKIP")


def test_a_server_that_never_answers_is_cut_at_the_timeout() -> None:
    with serving(BROKEN, "--never-answer") as base:
        text, as_json = text_and_json(f"{base}/mcp", "--timeout", "1")
        without = mcpctl_test(f"{base}/mcp", "--timeout", "1", "--no-health", "-o", "json")
    assert text.code == as_json.code == without.code == 1
    assert text.line("health").startswith("FAIL") and "no answer within 1 s" in text.line("health")
    assert as_json.report()["failedSteps"] == ["health"]
    assert without.report()["failedSteps"] == ["connect"]
    assert without.statuses()["tools/list"] == "SKIP"
    assert max(text.seconds, as_json.seconds, without.seconds) < 8, "cut at --timeout, not waited on"


def test_usage_errors_exit_2_before_any_request() -> None:
    with serving(BROKEN, "--never-answer") as base:
        run = mcpctl_test(f"{base}/mcp", "--args", '{"a":1}')
    assert run.code == 2
    assert run.stderr.startswith("error: --args: needs --tool")
    assert run.seconds < 8 and run.stdout == ""


# ---- mcpd's per-server proxy with McpTokens ------------------------------------------------------------


def test_mcpd_proxy_with_a_valid_revoked_and_no_token(daemon: Mcpd, tmp_path: Path) -> None:
    op = login_admin(_cli_maker(daemon, tmp_path)())
    op.ok("create", "server", "tested", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "tested-proj", "--server", "tested")
    token = op.json("create", "mcptoken", "checker", "-p", "tested-proj")["token"]
    wait_running(op, "tested", 1)
    url = proxy_url(op, "tested", "tested-proj")
    call = ["--tool", "echo", "--args", '{"text":"hi"}', "--expect-tools", "echo"]

    valid = mcpctl_test(url, *call, "-o", "json", env={"MCPCTL_TOKEN": token})
    assert valid.code == 0, valid.stdout + valid.stderr
    steps = {step["name"]: step for step in valid.report()["steps"]}
    assert {name: step["status"] for name, step in steps.items()} == {
        "health": "PASS", "connect": "PASS", "session": "PASS", "tools/list": "PASS",
        "expected-tools": "PASS", "call": "PASS", "auth": "PASS", "latency": "SKIP",
    }  # fmt: skip
    assert steps["health"]["data"]["url"] == f"{daemon.url}/healthz"
    assert steps["connect"]["data"]["protocolVersion"] == "2025-11-25"  # server/discover → -32601: fallback
    assert steps["auth"]["data"]["httpStatus"] == 401
    assert steps["auth"]["data"]["wwwAuthenticate"].startswith("Bearer")
    assert token not in valid.stdout

    op.ok("revoke", "mcptoken", "checker", "-p", "tested-proj")
    revoked, anonymous = mcpctl_test(url, "--token", token), mcpctl_test(url)
    for run, detail in ((revoked, "HTTP 401 with the given token"), (anonymous, "HTTP 401 without a token")):
        assert run.code == 1, run.stdout
        assert run.line("connect").startswith("FAIL") and detail in run.line("connect")
        assert "auth failure in connect (exit 1)" in run.stdout.splitlines()[-1]
    op.ok("delete", "project", "tested-proj")
    op.ok("delete", "server", "tested")
