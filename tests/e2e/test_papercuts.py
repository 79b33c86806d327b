"""The CLI comforts of issue 15 against one real mcpd (SQLite): what a login token on the project
endpoint is told, the hint after a login ends, `patch` errors that name the field, and completion of
object names through click's completion protocol."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Cli, error_lines, login_admin
from tests.e2e.rawmcp import INITIALIZE, headers

pytestmark = pytest.mark.e2e

PROJECT = "papercuts"


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "project", PROJECT)
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
