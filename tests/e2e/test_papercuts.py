"""The CLI comforts of issue 15 against one real mcpd (SQLite): what a login token on the project
endpoint is told, the hint after a login ends, `patch` errors that name the field, and completion of
object names through click's completion protocol."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CLI_TIMEOUT, MCPCTL, Cli, Nowhere, error_lines, login_admin
from tests.e2e.rawmcp import INITIALIZE, headers
from tests.e2e.upstreams import TIME_SERVER, wait_for
from tests.processes import clean_env

pytestmark = pytest.mark.e2e

PROJECT = "papercuts"


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "pc-time", *TIME_SERVER)
    op.ok("create", "project", PROJECT, "--server", "pc-time")
    op.ok("create", "user", "pc-user", "--email", "pc-user@example.com")
    return op


def _endpoint(cli: Cli, project: str = PROJECT) -> str:
    return f"{cli.daemon.url}/projects/{project}/mcp"


# ---- a login token on the project endpoint ----------------------------------------------------------


def test_a_login_token_on_the_project_endpoint_is_told_to_use_an_mcptoken(op: Cli) -> None:
    session = op.session_token()

    response = httpx.post(_endpoint(op), json=INITIALIZE, headers=headers(session), timeout=10)

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert "not an McpToken" in error["message"]
    assert f"mcpctl create mcptoken NAME -p {PROJECT}" in error["message"]
    assert session not in response.text


def test_a_garbage_bearer_gets_a_short_refusal_that_does_not_echo_it(op: Cli) -> None:
    bearer = "not-a-token-at-all-0123456789"

    response = httpx.post(_endpoint(op), json=INITIALIZE, headers=headers(bearer), timeout=10)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"]["code"] == "unauthenticated"
    assert "malformed" in response.json()["error"]["message"]
    assert bearer not in response.text


# ---- a login that ended ------------------------------------------------------------------------------


def _end_session(make_cli: Callable[[], Cli], bearer: str) -> None:
    """Log the session out from elsewhere (another CLI handed the bearer), as an expiry would end it."""
    make_cli().with_token(bearer).ok("logout")


def test_a_login_that_ended_says_run_mcpctl_login(make_cli: Callable[[], Cli]) -> None:
    cli = login_admin(make_cli())
    _end_session(make_cli, cli.session_token())

    result = cli("get", "servers")

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("Error from server (Unauthorized): ")
    assert line.endswith('your login session has expired or was revoked; run "mcpctl login"')


def test_a_refused_mcpctl_token_from_the_environment_says_so(make_cli: Callable[[], Cli]) -> None:
    bearer = login_admin(make_cli()).session_token()
    _end_session(make_cli, bearer)

    result = make_cli().with_token(bearer)("get", "servers")

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("Error from server (Unauthorized): ")
    assert "$MCPCTL_TOKEN" in line and "mcpctl login" not in line


# ---- patch errors name the field ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("noun", "name", "assignment", "field"),
    [
        ("server", "pc-time", "replicas=abc", "replicas"),
        ("server", "pc-time", "colour=blue", "colour"),
        ("server", "pc-time", "healthCheck.intervalSeconds=soon", "healthCheck.intervalSeconds"),
        ("server", "pc-time", "args=[a, [b]]", "args[1]"),
        ("project", PROJECT, "toolPrefixMode=sometimes", "toolPrefixMode"),
        ("user", "pc-user", "disabled=maybe", "disabled"),
    ],
)
def test_a_bad_patch_names_the_field(op: Cli, noun: str, name: str, assignment: str, field: str) -> None:
    result = op("patch", noun, name, assignment)

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith(f"Error from server (BadRequest): {field}: "), line


def test_a_patch_with_several_bad_fields_names_each(op: Cli) -> None:
    result = op("patch", "server", "pc-time", "replicas=abc", "colour=blue")

    [line] = error_lines(result.stderr)
    assert result.returncode == 1
    assert "replicas: " in line and "colour: " in line


def test_a_bad_manifest_names_the_field_in_apply(op: Cli) -> None:
    manifest = (
        "kind: Server\nmetadata: {name: pc-bad}\n"
        "spec: {transport: stdio, command: x, replicas: abc, colour: blue}\n"
    )

    result = op("apply", "-f", "-", input=manifest)

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("Error from server (BadRequest): server/pc-bad: spec.replicas: "), line
    assert "spec.colour: " in line


# ---- completion of object names ----------------------------------------------------------------------


def _complete(cli: Cli, line: str, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    """What `mcpctl` answers the shell's completion hook for `line` (the cursor at its end), through
    click's protocol as the scripts from `mcpctl completion SHELL` drive it."""
    words = line.split(" ")
    env = {
        **clean_env(),
        "MCPCTL_CONFIG": str(cli.config),
        "MCPCTL_MCPD_URL": cli.daemon.url,
        "_MCPCTL_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": line,
        # bash and zsh say which word is being completed, fish says what it holds so far
        "COMP_CWORD": words[-1] if shell == "fish" else str(len(words) - 1),
    }
    return subprocess.run(
        [MCPCTL], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )


def _offered(cli: Cli, line: str) -> list[str]:
    result = _complete(cli, line)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [entry.split(",", 1)[1] for entry in result.stdout.splitlines() if entry]


@pytest.fixture(scope="module")
def named(op: Cli) -> Cli:
    """Objects to complete: a second project, a prompt and a token in the first, a running instance."""
    op.ok("create", "project", "pc-other")
    op.ok("create", "mcptoken", "pc-token", "-p", PROJECT)
    wait_for("an instance of pc-time", lambda: op.json("get", "instances", "--server", "pc-time")["items"])
    return op


def test_object_names_complete_for_each_verb(named: Cli) -> None:
    assert _offered(named, "mcpctl get servers ") == ["pc-time"]
    assert _offered(named, "mcpctl get srv pc-") == ["pc-time"]
    assert _offered(named, "mcpctl describe project pc-") == ["pc-other"]
    assert _offered(named, "mcpctl delete projects pa") == [PROJECT]
    assert _offered(named, "mcpctl patch user pc-") == ["pc-user"]
    assert _offered(named, "mcpctl logs instance pc-time") == ["pc-time-0"]
    assert _offered(named, f"mcpctl revoke mcptoken -p {PROJECT} ") == ["pc-token"]


def test_project_names_complete_after_p(named: Cli) -> None:
    assert _offered(named, "mcpctl get mcptokens -p pc-") == ["pc-other"]
    assert set(_offered(named, "mcpctl revoke mcptoken -p ")) >= {PROJECT, "pc-other"}


def test_names_already_on_the_line_are_not_offered_again(named: Cli) -> None:
    assert _offered(named, "mcpctl delete servers pc-time ") == []


def test_zsh_and_fish_get_the_same_names(named: Cli) -> None:
    for shell in ("zsh", "fish"):
        result = _complete(named, "mcpctl get servers pc-", shell)
        assert result.returncode == 0 and result.stderr == ""
        assert "pc-time" in result.stdout.replace(",", "\n").split(), shell


def test_completion_says_nothing_when_it_cannot_ask(make_cli: Callable[[], Cli], tmp_path: Path) -> None:
    logged_out = make_cli()
    nowhere = Cli(Nowhere(), tmp_path / "config.yaml", token="mcpctl_ses_whatever")

    for cli in (logged_out, nowhere):
        result = _complete(cli, "mcpctl get servers ")
        assert result.returncode == 0
        assert result.stdout.strip() == "" and result.stderr == ""


def test_completion_gives_up_quickly_on_an_mcpd_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cli = Cli(Nowhere(f"http://127.0.0.1:{port}"), tmp_path / "config.yaml", token="mcpctl_ses_x")
        started = time.monotonic()
        result = _complete(cli, "mcpctl get servers ")
        elapsed = time.monotonic() - started

    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr == ""
    assert elapsed < 4.0  # about two seconds of waiting, plus starting the CLI
