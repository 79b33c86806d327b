"""Ready-to-paste MCP client configuration for a project token (DESIGN §4)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from mcpctl.core import tokens
from mcpctl.core.clientconfig import client_config, mcp_url

TOKEN = tokens.generate()
PUBLIC = "https://mcp.example.com"
URL = "https://mcp.example.com/projects/monitoring/mcp"
CLIENTS = {"claudeDesktop", "claudeCode", "vscode", "cursor", "http"}


def _config(
    *, token_path: str | None = None, project: str = "monitoring", public_url: str = PUBLIC
) -> dict[str, Any]:
    return client_config(project=project, token=TOKEN, public_url=public_url, token_path=token_path)


def test_the_mcp_url_is_the_public_url_then_projects_name_mcp() -> None:
    assert mcp_url(PUBLIC, "monitoring") == URL
    assert mcp_url(PUBLIC + "/", "monitoring") == URL
    assert mcp_url("http://127.0.0.1:3000", "p") == "http://127.0.0.1:3000/projects/p/mcp"


def test_every_client_gets_a_snippet_and_all_are_json_serialisable() -> None:
    config = _config()
    assert set(config) == CLIENTS
    json.dumps(config)


def test_claude_desktop_runs_mcplocal_stdio_with_the_token_file_when_one_was_written() -> None:
    config = _config(token_path="/data/mcp-tokens/monitoring/agent")
    assert config["claudeDesktop"] == {
        "mcpServers": {
            "mcpctl-monitoring": {
                "command": "mcplocal",
                "args": ["stdio", "--project", "monitoring"],
                "env": {"MCPCTL_TOKEN_FILE": "/data/mcp-tokens/monitoring/agent", "MCPCTL_MCPD_URL": PUBLIC},
            }
        }
    }
    assert TOKEN not in json.dumps(config["claudeDesktop"])


def test_claude_desktop_carries_the_token_in_the_environment_without_a_file() -> None:
    server = _config()["claudeDesktop"]["mcpServers"]["mcpctl-monitoring"]
    assert server["command"] == "mcplocal"
    assert server["args"] == ["stdio", "--project", "monitoring"]
    assert server["env"] == {"MCPCTL_TOKEN": TOKEN, "MCPCTL_MCPD_URL": PUBLIC}


def test_claude_code_is_a_claude_mcp_add_http_command_line() -> None:
    line = _config()["claudeCode"]
    assert isinstance(line, str)
    assert shlex.split(line) == [
        "claude",
        "mcp",
        "add",
        "--transport",
        "http",
        "mcpctl-monitoring",
        URL,
        "--header",
        f"Authorization: Bearer {TOKEN}",
    ]


def test_vscode_is_a_servers_entry_for_vscode_mcp_json() -> None:
    assert _config()["vscode"] == {
        "servers": {
            "mcpctl-monitoring": {"type": "http", "url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}}
        }
    }


def test_cursor_is_an_mcp_servers_entry_with_url_and_headers() -> None:
    assert _config()["cursor"] == {
        "mcpServers": {"mcpctl-monitoring": {"url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}}}
    }


def test_generic_http_is_url_and_bearer_header() -> None:
    assert _config()["http"] == {"url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}}


@pytest.mark.parametrize("token_path", [None, "/data/mcp-tokens/monitoring/agent"])
def test_http_clients_always_carry_the_bearer_whether_or_not_a_file_was_written(
    token_path: str | None,
) -> None:
    config = _config(token_path=token_path)
    for http_snippet in (
        config["http"],
        config["vscode"]["servers"]["mcpctl-monitoring"],
        config["cursor"]["mcpServers"]["mcpctl-monitoring"],
    ):
        assert http_snippet["url"] == URL
        assert http_snippet["headers"] == {"Authorization": f"Bearer {TOKEN}"}


def test_a_trailing_slash_on_the_public_url_is_dropped_everywhere() -> None:
    config = _config(public_url=PUBLIC + "/")
    assert config["http"]["url"] == URL
    assert config["claudeDesktop"]["mcpServers"]["mcpctl-monitoring"]["env"]["MCPCTL_MCPD_URL"] == PUBLIC


def test_the_server_key_is_mcpctl_and_the_project_slug_in_every_snippet() -> None:
    config = _config(project="Team_42")
    key = "mcpctl-team-42"
    assert list(config["claudeDesktop"]["mcpServers"]) == [key]
    assert list(config["vscode"]["servers"]) == [key]
    assert list(config["cursor"]["mcpServers"]) == [key]
    assert shlex.split(config["claudeCode"])[5] == key
    # the project itself (URL, --project) keeps its real name
    assert config["http"]["url"] == f"{PUBLIC}/projects/Team_42/mcp"
    assert config["claudeDesktop"]["mcpServers"][key]["args"] == ["stdio", "--project", "Team_42"]
