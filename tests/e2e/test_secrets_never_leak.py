"""Secret values and session bearers never show up in mcpd's log or in the CLI's ordinary output."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.conftest import Cli, Mcpd

pytestmark = pytest.mark.e2e

VALUE = "SuperSecretValue123"


def test_secret_values_and_bearers_are_absent_from_logs_and_output(mcpd: Mcpd, cli: Cli) -> None:
    creds = mcpd.admin_credentials()
    admin = cli
    login = admin.ok("login", "--email", creds["email"], "--password-stdin", input=creds["password"] + "\n")
    bearer = admin.session_token()
    outputs: list[subprocess.CompletedProcess[str]] = [
        login,
        admin.ok("create", "secret", "sl-secret", "--data", f"TOKEN={VALUE}", "--label", "team=obs"),
        admin.ok(
            "create",
            "server",
            "sl-server",
            "--transport",
            "http",
            "--url",
            "https://sl.example.com/mcp",
            "--header-secret",
            "Authorization=sl-secret:TOKEN",
        ),
        admin.ok("get", "secrets", "-o", "yaml"),
        admin.ok("get", "secrets", "-o", "json"),
        admin.ok("get", "secret", "sl-secret", "-o", "yaml"),
        admin.ok("get", "secrets", "-o", "wide"),
        admin.ok("describe", "secret", "sl-secret"),
        admin.ok("describe", "server", "sl-server"),
        admin.ok("get", "server", "sl-server", "-o", "yaml"),
        admin.ok("status"),
        admin("get", "secret", "sl-no-such-secret"),
        admin("create", "secret", "sl-rejected", "--data", f"bad key!={VALUE}"),  # refused: not echoed back
    ]
    assert "sl-secret" in outputs[3].stdout  # the secret is listed …
    assert VALUE in admin.ok("get", "secret", "sl-secret", "--show-values", "-o", "json").stdout  # … and set

    secrets = {
        "secret value": VALUE,
        "session bearer": bearer,
        "admin password": creds["password"],
    }
    for what, secret in secrets.items():
        assert secret not in mcpd.log(), f"the {what} is in mcpd's log"
        for result in outputs:
            assert secret not in result.stdout + result.stderr, f"the {what} is in `mcpctl {result.args[1:]}`"
