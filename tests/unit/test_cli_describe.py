"""`describe`: name, labels, times, spec and status; rbac bindings in the flag grammar; secret keys only."""

from __future__ import annotations

from datetime import UTC, datetime

from mcpctl.cli.describe import describe_text

NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
META = {"labels": {"team": "obs"}, "createdAt": "2026-11-21T13:55:00Z", "updatedAt": "2026-11-21T13:56:00Z"}


def test_server_shows_spec_with_secret_references_and_status() -> None:
    text = describe_text(
        {
            "kind": "Server",
            "metadata": {"name": "grafana", **META},
            "spec": {
                "transport": "stdio",
                "command": "uvx",
                "args": ["mcp-grafana", "-v"],
                "env": {
                    "GRAFANA_TOKEN": {"secretRef": {"name": "grafana", "key": "TOKEN"}},
                    "logLevel": "debug",
                },
                "healthCheck": {"intervalSeconds": 30},
                "description": "Dashboards",
            },
            "status": {"projects": ["monitoring"]},
        },
        NOW,
    )
    lines = text.splitlines()
    assert lines[:6] == [
        "Name:         grafana",
        "Kind:         Server",
        "Labels:       team=obs",
        "Description:  Dashboards",
        "Created:      2026-11-21T13:55:00Z (5m ago)",
        "Updated:      2026-11-21T13:56:00Z",
    ]
    assert "Spec:" in lines and "Status:" in lines
    assert "  Args:       mcp-grafana, -v" in lines
    assert "    GRAFANA_TOKEN:  <set to the key 'TOKEN' in secret 'grafana'>" in lines
    assert "    logLevel:       debug" in lines  # the user's own keys are not title-cased
    assert "  Health Check:" in lines and "    Interval Seconds:  30" in lines
    assert "  Projects:  monitoring" in lines


def test_rbac_shows_subjects_and_bindings_in_flag_form() -> None:
    text = describe_text(
        {
            "kind": "RbacDefinition",
            "metadata": {"name": "admins"},
            "spec": {
                "subjects": ["Group:admins"],
                "roleBindings": [
                    {"role": "edit", "resource": "*"},
                    {"role": "run", "resource": "servers", "name": "time"},
                    {"role": "run", "action": "*"},
                ],
            },
        },
        NOW,
    )
    assert text.splitlines()[3:] == [
        "Created:  <unknown>",
        "Subjects:",
        "  Group:admins",
        "Role Bindings:",
        "  role:edit,resource:*",
        "  role:run,resource:servers,name:time",
        "  action:*",
    ]


def test_secret_shows_keys_never_values() -> None:
    text = describe_text(
        {
            "kind": "Secret",
            "metadata": {"name": "s"},
            "spec": {"data": {"TOKEN": "plaintext-value"}},
            "status": {"keys": ["TOKEN"]},
        },
        NOW,
    )
    assert "plaintext-value" not in text
    assert text.splitlines()[-2:] == ["Keys:", "  TOKEN"]
