"""Ready-to-paste MCP client configuration for a project token (DESIGN §4): env names mcplocal reads,
no raw token in any snippet meant for a committed or shared file."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from mcpctl.core import tokens
from mcpctl.core.clientconfig import client_config, installed_mcplocal, mcp_url, token_env_name

TOKEN = tokens.generate()
PUBLIC = "https://mcp.example.com"
URL = "https://mcp.example.com/projects/monitoring/mcp"
CLIENTS = {"claudeDesktop", "claudeCode", "vscode", "cursor", "http"}


def _config(
    *, token_path: str | None = None, project: str = "monitoring", public_url: str = PUBLIC
) -> dict[str, Any]:
    return client_config(
        project=project,
        token=TOKEN,
        public_url=public_url,
        token_path=token_path,
        mcplocal_command="/opt/mcpctl/bin/mcplocal",
    )


def test_the_mcp_url_is_the_public_url_then_projects_name_mcp() -> None:
    assert mcp_url(PUBLIC, "monitoring") == URL
    assert mcp_url(PUBLIC + "/", "monitoring") == URL
    assert mcp_url("http://127.0.0.1:3000", "p") == "http://127.0.0.1:3000/projects/p/mcp"


def test_every_client_gets_a_snippet_and_all_are_json_serialisable() -> None:
    config = _config()
    assert set(config) == CLIENTS
    json.dumps(config)


def test_claude_desktop_runs_mcplocal_stdio_with_the_env_names_mcplocal_reads_and_the_token_file() -> None:
    config = _config(token_path="/data/mcp-tokens/monitoring/agent")
    assert config["claudeDesktop"] == {
        "mcpServers": {
            "mcpctl-monitoring": {
                "command": "/opt/mcpctl/bin/mcplocal",
                "args": ["stdio", "--project", "monitoring"],
                "env": {
                    "MCPCTL_TOKEN_FILE": "/data/mcp-tokens/monitoring/agent",
                    "MCPLOCAL_MCPD_URL": PUBLIC,
                },
            }
        }
    }
    assert TOKEN not in json.dumps(config["claudeDesktop"])


def test_claude_desktop_carries_the_token_in_its_user_wide_file_without_a_token_file() -> None:
    server = _config()["claudeDesktop"]["mcpServers"]["mcpctl-monitoring"]
    assert server["env"] == {"MCPCTL_TOKEN": TOKEN, "MCPLOCAL_MCPD_URL": PUBLIC}


def test_claude_code_is_a_claude_mcp_add_line_into_the_project_file_reading_an_env_var() -> None:
    line = _config()["claudeCode"]
    assert isinstance(line, str)
    assert shlex.split(line) == [
        "claude",
        "mcp",
        "add",
        "--transport",
        "http",
        "--scope",
        "project",
        "mcpctl-monitoring",
        URL,
        "--header",
        "Authorization: Bearer ${MCPCTL_TOKEN_MONITORING}",
    ]
    assert "'Authorization: Bearer ${MCPCTL_TOKEN_MONITORING}'" in line  # the shell must not expand it


def test_vscode_is_a_servers_entry_with_a_secret_input() -> None:
    assert _config()["vscode"] == {
        "inputs": [
            {
                "type": "promptString",
                "id": "mcpctl-monitoring-token",
                "description": "mcpctl token for project monitoring",
                "password": True,
            }
        ],
        "servers": {
            "mcpctl-monitoring": {
                "type": "http",
                "url": URL,
                "headers": {"Authorization": "Bearer ${input:mcpctl-monitoring-token}"},
            }
        },
    }


def test_cursor_is_an_mcp_servers_entry_reading_an_env_interpolation() -> None:
    assert _config()["cursor"] == {
        "mcpServers": {
            "mcpctl-monitoring": {
                "url": URL,
                "headers": {"Authorization": "Bearer ${env:MCPCTL_TOKEN_MONITORING}"},
            }
        }
    }


def test_generic_http_is_url_and_bearer_header() -> None:
    assert _config()["http"] == {"url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}}


@pytest.mark.parametrize("token_path", [None, "/data/mcp-tokens/monitoring/agent"])
def test_no_snippet_for_a_committed_or_shared_file_holds_the_token(token_path: str | None) -> None:
    config = _config(token_path=token_path)
    for key in ("claudeCode", "vscode", "cursor"):
        assert TOKEN not in json.dumps(config[key])


@pytest.mark.parametrize(
    ("project", "name"), [("monitoring", "MCPCTL_TOKEN_MONITORING"), ("Team_42.x", "MCPCTL_TOKEN_TEAM_42_X")]
)
def test_the_token_variable_is_named_after_the_project_slug(project: str, name: str) -> None:
    assert token_env_name(project) == name


def test_the_installed_mcplocal_is_the_one_beside_the_python_else_the_one_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "mcplocal").write_text("#!/bin/sh\n")
    (venv / "mcplocal").chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert installed_mcplocal(str(venv / "python")) == str(venv / "mcplocal")
    assert installed_mcplocal(str(tmp_path / "python")) is None
    monkeypatch.setenv("PATH", str(venv))
    assert installed_mcplocal(str(tmp_path / "python")) == str(venv / "mcplocal")


def test_a_trailing_slash_on_the_public_url_is_dropped_everywhere() -> None:
    config = _config(public_url=PUBLIC + "/")
    assert config["http"]["url"] == URL
    assert config["claudeDesktop"]["mcpServers"]["mcpctl-monitoring"]["env"]["MCPLOCAL_MCPD_URL"] == PUBLIC


def test_the_server_key_is_mcpctl_and_the_project_slug_in_every_snippet() -> None:
    config = _config(project="Team_42")
    key = "mcpctl-team-42"
    assert list(config["claudeDesktop"]["mcpServers"]) == [key]
    assert list(config["vscode"]["servers"]) == [key]
    assert list(config["cursor"]["mcpServers"]) == [key]
    assert shlex.split(config["claudeCode"])[7] == key
    # the project itself (URL, --project) keeps its real name
    assert config["http"]["url"] == f"{PUBLIC}/projects/Team_42/mcp"
    assert config["claudeDesktop"]["mcpServers"][key]["args"] == ["stdio", "--project", "Team_42"]
