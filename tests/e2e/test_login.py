"""Logging in with the credentials mcpd generated, seeing who you are, logging out."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Cli, Mcpd, error_lines, login_admin

pytestmark = pytest.mark.e2e


def test_login_with_generated_admin_credentials_then_status_shows_the_user(mcpd: Mcpd, cli: Cli) -> None:
    creds = mcpd.admin_credentials()
    assert creds["mcpdUrl"] == mcpd.url

    login = cli("login", "--email", creds["email"], "--password-stdin", input=creds["password"] + "\n")

    assert login.returncode == 0, login.stderr
    assert creds["email"] in login.stdout
    assert stat.S_IMODE((mcpd.data_dir / "admin-credentials").stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600  # it holds the session bearer
    status = cli.ok("status")
    assert creds["email"] in status.stdout
    assert mcpd.url in status.stdout


def test_after_logout_commands_say_not_logged_in(cli: Cli) -> None:
    admin = login_admin(cli)
    admin.ok("get", "projects")

    admin.ok("logout")
    result = admin("get", "projects")

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "not logged in" in line or line.startswith("Error from server (Unauthorized)")


def test_logout_ends_the_session_on_the_server(cli_factory: Callable[[], Cli]) -> None:
    admin = login_admin(cli_factory())
    bearer = admin.session_token()
    admin.ok("logout")

    # the same bearer, handed over by environment, no longer opens anything
    result = cli_factory().with_token(bearer)("get", "projects")

    assert result.returncode == 1
    assert error_lines(result.stderr)[0].startswith("Error from server (Unauthorized)")


def test_login_with_a_wrong_password_fails_and_stores_nothing(mcpd: Mcpd, cli: Cli) -> None:
    creds = mcpd.admin_credentials()

    result = cli("login", "--email", creds["email"], "--password-stdin", input="not-the-password\n")

    assert result.returncode == 1
    assert error_lines(result.stderr)[0].startswith("Error from server (Unauthorized)")
    assert not cli.config.exists() or "token" not in cli.config.read_text()
