"""`mcpctl config claude`: the token it asks for, the snippet it prints, and the merge into a client's
config file — other entries kept, old file backed up, written atomically, broken files refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from mcpctl.cli.clientconfig import default_token_name
from mcpctl.cli.clientfiles import CLIENTS, default_path, merged, read_config_file, write_config_file
from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli

RAW = "mcpctl_pat_" + "C" * 49
URL = "http://mcpd.test/projects/monitoring/mcp"
HEADERS = {"Authorization": f"Bearer {RAW}"}
CLIENT_CONFIG: dict[str, Any] = {
    "claudeDesktop": {
        "mcpServers": {
            "mcpctl-monitoring": {
                "command": "mcplocal",
                "args": ["stdio", "--project", "monitoring"],
                "env": {
                    "MCPCTL_TOKEN_FILE": "/data/mcp-tokens/monitoring/t",
                    "MCPCTL_MCPD_URL": "http://mcpd.test",
                },
            }
        }
    },
    "claudeCode": (
        f"claude mcp add --transport http mcpctl-monitoring {URL} --header 'Authorization: Bearer {RAW}'"
    ),
    "vscode": {"servers": {"mcpctl-monitoring": {"type": "http", "url": URL, "headers": HEADERS}}},
    "cursor": {"mcpServers": {"mcpctl-monitoring": {"url": URL, "headers": HEADERS}}},
    "http": {"url": URL, "headers": HEADERS},
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    monkeypatch.setenv("MCPCTL_MCPD_URL", "http://mcpd.test")
    monkeypatch.chdir(tmp_path)


class Mint:
    """A fake mcpd that mints one token per POST, answering the snippets above."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/api/v1/mcptokens")
        body = json.loads(request.content)
        self.bodies.append(body)
        return httpx.Response(
            201,
            json={
                "token": RAW,
                "tokenPath": f"/data/mcp-tokens/{body['project']}/{body['name']}",
                "clientConfig": CLIENT_CONFIG,
                "mcpToken": {"kind": "McpToken", "metadata": {"name": body["name"]}},
            },
        )


def run(mint: Mint, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["config", "claude", *args], obj=AppState(transport=httpx.MockTransport(mint))
    )


def test_asks_for_an_empty_rbac_token_written_to_a_file_named_after_client_and_host() -> None:
    mint = Mint()
    result = run(mint, "-p", "monitoring")
    assert result.exit_code == 0, result.output
    body = mint.bodies[0]
    assert body["name"] == default_token_name("claude-desktop")
    assert (body["project"], body["rbac"], body["writeFile"]) == ("monitoring", "empty", True)
    assert json.loads(result.stdout) == CLIENT_CONFIG["claudeDesktop"]
    assert "/data/mcp-tokens/monitoring/" in result.stderr


def test_default_token_name_is_a_dns_label() -> None:
    assert default_token_name("cursor", "My_Laptop.example.com") == "cursor-my-laptop"
    assert len(default_token_name("claude-desktop", "x" * 80)) == 63


def test_claude_code_without_write_prints_the_command_line() -> None:
    result = run(Mint(), "-p", "monitoring", "--client", "claude-code", "--name", "cc")
    assert result.stdout == CLIENT_CONFIG["claudeCode"] + "\n"
    assert "shown once" in result.stderr


def test_write_merges_keeps_other_entries_and_backs_up_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    old = {
        "mcpServers": {"other": {"command": "x"}, "mcpctl-monitoring": {"command": "stale"}},
        "theme": "dark",
    }
    path.write_text(json.dumps(old))
    path.chmod(0o640)
    result = run(Mint(), "-p", "monitoring", "--config-path", str(path), "--write")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote mcpctl-monitoring to {path} (backup: {path}.bak)\n"
    data = json.loads(path.read_text())
    assert data["theme"] == "dark"
    assert data["mcpServers"]["other"] == {"command": "x"}
    assert (
        data["mcpServers"]["mcpctl-monitoring"]
        == CLIENT_CONFIG["claudeDesktop"]["mcpServers"]["mcpctl-monitoring"]
    )
    assert json.loads(Path(f"{path}.bak").read_text()) == old
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("claude")) == [
        "claude.json",
        "claude.json.bak",
    ]
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert RAW not in result.stdout


def test_claude_code_write_puts_an_http_entry_in_the_project_mcp_json(tmp_path: Path) -> None:
    result = run(Mint(), "-p", "monitoring", "--client", "claude-code", "--write")
    assert result.exit_code == 0, result.output
    path = tmp_path / ".mcp.json"
    assert json.loads(path.read_text()) == {
        "mcpServers": {"mcpctl-monitoring": {"type": "http", "url": URL, "headers": HEADERS}}
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a new file: it holds a bearer
    assert result.stdout == f"wrote mcpctl-monitoring to {path}\n"
    assert not (tmp_path / ".mcp.json.bak").exists()


def test_vscode_write_uses_the_servers_map_in_dot_vscode(tmp_path: Path) -> None:
    result = run(Mint(), "-p", "monitoring", "--client", "vscode", "--write")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / ".vscode" / "mcp.json").read_text())
    assert data == CLIENT_CONFIG["vscode"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"mcpServers": []}'])
def test_a_broken_config_file_is_refused_before_any_token_is_minted(tmp_path: Path, content: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(content)
    mint = Mint()
    result = run(mint, "-p", "monitoring", "--client", "cursor", "--config-path", str(path), "--write")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "nothing was written" in result.stderr
    assert path.read_text() == content
    assert mint.bodies == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcp.json"]


def test_config_path_without_write_is_a_usage_error() -> None:
    mint = Mint()
    result = run(mint, "-p", "monitoring", "--config-path", "x.json")
    assert result.exit_code == 2 and mint.bodies == []


def test_writing_through_a_symlink_updates_its_target(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "mcp.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    current = read_config_file(link, "mcpServers")
    write_config_file(current, merged(current.data, "mcpServers", {"a": {}}))
    assert link.is_symlink()
    assert json.loads(target.read_text()) == {"mcpServers": {"a": {}}}


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"keep": true}')
    current = read_config_file(path, "mcpServers")

    def broken_replace(src: str, dst: str) -> None:
        if str(dst) == str(path):
            raise OSError(28, "No space left on device")
        os.rename(src, dst)

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(Exception, match="cannot write"):
        write_config_file(current, merged(current.data, "mcpServers", {"a": {}}))
    assert path.read_text() == '{"keep": true}'
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("client", "platform", "expected"),
    [
        ("claude-desktop", "linux", "/home/u/.config/Claude/claude_desktop_config.json"),
        ("claude-desktop", "darwin", "/home/u/Library/Application Support/Claude/claude_desktop_config.json"),
        ("cursor", "linux", "/home/u/.cursor/mcp.json"),
        ("claude-code", "linux", ".mcp.json"),
        ("vscode", "linux", ".vscode/mcp.json"),
    ],
)
def test_default_paths(client: str, platform: str, expected: str) -> None:
    assert str(default_path(client, platform=platform, home=Path("/home/u"))) == expected
    assert client in CLIENTS
