"""What mcpd stored survives a restart: objects, secret values, and login sessions."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli, Mcpd

pytestmark = pytest.mark.e2e

BACKENDS = ("sqlite", "postgresql")  # the database matters end to end here (conftest)


def test_objects_secret_values_and_sessions_survive_a_restart(mcpd: Mcpd, admin: Cli, cli: Cli) -> None:
    admin.ok("create", "secret", "ps-creds", "--data", "API_KEY=persisted-value-1")
    admin.ok(
        "create",
        "server",
        "ps-time",
        "--transport",
        "stdio",
        "--command",
        "uvx",
        "--arg",
        "mcp-time",
        "--env-secret",
        "API_KEY=ps-creds:API_KEY",
        "--label",
        "team=obs",
    )
    admin.ok("create", "project", "ps-proj", "--server", "ps-time")
    admin.ok(
        "create",
        "user",
        "ps-user",
        "--email",
        "ps-user@example.com",
        "--password-stdin",
        input="ps-user-pass-1\n",
    )
    admin.ok("create", "group", "ps-group", "--member", "ps-user@example.com")
    refs = [("server", "ps-time"), ("project", "ps-proj"), ("user", "ps-user"), ("group", "ps-group")]
    before = {ref: admin.json("get", *ref) for ref in refs}

    mcpd.restart()

    # the session from before the restart still works: no new login
    for ref, obj in before.items():
        assert admin.json("get", *ref) == obj
    secret = admin.json("get", "secret", "ps-creds", "--show-values")
    assert secret["spec"]["data"] == {"API_KEY": "persisted-value-1"}
    assert mcpd.admin_credentials()["email"] in admin.ok("status").stdout
    cli.login("ps-user@example.com", "ps-user-pass-1")
