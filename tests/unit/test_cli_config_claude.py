"""`mcpctl config claude`: the token it keeps on this machine, the entry it prints or merges into a
client's config file — other entries kept, old file backed up, written atomically, broken files
refused — and that no config file or snippet gets the raw token."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from mcpctl.cli.clientfiles import CLIENTS, default_path, merged, read_config_file, write_config_file
from mcpctl.cli.context import AppState
from mcpctl.cli.localtokens import local_token_name
from mcpctl.cli.main import cli
from mcpctl.core import tokens
from mcpctl.core.clientconfig import installed_mcplocal

MCPD = "http://mcpd.test"
URL = f"{MCPD}/projects/monitoring/mcp"
KEY = "mcpctl-monitoring"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "home" / ".mcpctl" / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    monkeypatch.setenv("MCPCTL_MCPD_URL", MCPD)
    monkeypatch.chdir(tmp_path)


ME = "alice@example.com"


class FakeMcpd:
    """Mints tokens, revokes them by name and introspects them, as mcpd does."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.active: dict[str, str] = {}  # name → token
        self.revoked: list[str] = []
        self.owners: dict[str, str] = {}  # name → owner, for tokens another user minted
        self.introspected: list[str] = []
        self.introspect_owner = ME

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/auth/me":
            return httpx.Response(200, json={"user": {"metadata": {"name": "alice"}, "spec": {"email": ME}}})
        if request.method == "GET" and path.startswith("/api/v1/projects/monitoring/mcptokens/"):
            name = path.rsplit("/", 1)[1]
            return httpx.Response(200, json={"status": {"owner": self.owners.get(name, ME)}})
        if path == "/api/v1/mcptokens/introspect":
            token = request.headers["Authorization"].removeprefix("Bearer ")
            self.introspected.append(token)
            ok = token in self.active.values()
            found = {"ok": True, "project": "monitoring", "owner": self.introspect_owner}
            return httpx.Response(200, json=found if ok else {"ok": False})
        if request.method == "POST" and path == "/api/v1/mcptokens":
            body = json.loads(request.content)
            self.bodies.append(body)
            if body["name"] in self.active:
                return httpx.Response(409, json={"error": {"code": "already_exists", "message": "exists"}})
            token = self.active[body["name"]] = tokens.generate()
            return httpx.Response(201, json={"token": token, "clientConfig": {}, "mcpToken": {}})
        if request.method == "POST" and path.endswith("/revoke"):
            name = path.split("/")[-2]
            self.revoked.append(self.active.pop(name))
            return httpx.Response(200, json={})
        raise AssertionError(f"unexpected {request.method} {path}")


def run(mcpd: FakeMcpd, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["config", "claude", "-p", "monitoring", *args],
        obj=AppState(transport=httpx.MockTransport(mcpd)),
    )


def ok(mcpd: FakeMcpd, *args: str) -> Result:
    result = run(mcpd, *args)
    assert result.exit_code == 0, result.output
    return result


def token_file(tmp_path: Path, name: str) -> Path:
    return tmp_path / "home" / ".mcpctl" / "tokens" / "mcpd-test-80" / "monitoring" / name


def test_mints_an_empty_rbac_token_into_a_private_file_beside_the_cli_config(tmp_path: Path) -> None:
    mcpd = FakeMcpd()
    result = ok(mcpd, "--name", "desk")
    body = mcpd.bodies[0]
    assert (body["name"], body["project"], body["rbac"], body["writeFile"]) == (
        "desk",
        "monitoring",
        "empty",
        False,
    )
    path = token_file(tmp_path, "desk")
    assert path.read_text().strip() == mcpd.active["desk"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (
        stat.S_IMODE(path.parent.stat().st_mode) == stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    )
    assert f"mcptoken/desk created: {path}" in result.stderr


def test_claude_desktop_runs_this_machines_mcplocal_with_the_token_file_and_the_cli_mcpd_url(
    tmp_path: Path,
) -> None:
    mcpd = FakeMcpd()
    result = ok(mcpd, "--name", "desk")
    entry = json.loads(result.stdout)["mcpServers"][KEY]
    assert entry == {
        "command": installed_mcplocal(),
        "args": ["stdio", "--project", "monitoring"],
        "env": {"MCPLOCAL_MCPD_URL": MCPD, "MCPCTL_TOKEN_FILE": str(token_file(tmp_path, "desk"))},
    }
    assert Path(entry["command"]).is_absolute()
    assert mcpd.active["desk"] not in result.output
    assert "restart Claude Desktop" in result.stderr


def test_claude_desktop_without_an_mcplocal_is_an_error_before_any_token_is_minted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mcpctl.core.clientconfig.installed_mcplocal", lambda: None)
    mcpd = FakeMcpd()
    result = run(mcpd)
    assert result.exit_code == 1 and "no mcplocal on this machine" in result.stderr
    assert mcpd.bodies == []


def test_default_token_name_is_a_dns_label_naming_host_and_user() -> None:
    assert local_token_name("cursor", "alice", "My_Laptop.example.com") == "cursor-my-laptop-alice"
    assert len(local_token_name("claude-desktop", "u", "x" * 80)) == 63


def test_rerunning_reuses_the_working_token_and_force_rotates_it(tmp_path: Path) -> None:
    mcpd = FakeMcpd()
    ok(mcpd, "--client", "cursor", "--name", "c")
    first = mcpd.active["c"]
    again = ok(mcpd, "--client", "cursor", "--name", "c", "--write")
    assert len(mcpd.bodies) == 1 and mcpd.active["c"] == first
    assert "mcptoken/c reused" in again.stdout
    rotated = ok(mcpd, "--client", "cursor", "--name", "c", "--write", "--force")
    assert mcpd.revoked == [first] and mcpd.active["c"] != first
    assert token_file(tmp_path, "c").read_text().strip() == mcpd.active["c"]
    assert "mcptoken/c rotated" in rotated.stdout


def test_a_token_file_mcpd_no_longer_takes_is_replaced_by_a_new_token(tmp_path: Path) -> None:
    mcpd = FakeMcpd()
    ok(mcpd, "--client", "vscode", "--name", "v")
    mcpd.revoked.append(mcpd.active.pop("v"))  # revoked elsewhere
    result = ok(mcpd, "--client", "vscode", "--name", "v")
    assert "mcptoken/v created" in result.stderr
    assert token_file(tmp_path, "v").read_text().strip() == mcpd.active["v"]


def test_claude_code_without_write_prints_a_claude_mcp_add_line_that_reads_an_env_var() -> None:
    mcpd = FakeMcpd()
    result = ok(mcpd, "--client", "claude-code", "--name", "cc")
    assert result.stdout == (
        f"claude mcp add --transport http --scope project {KEY} {URL} "
        "--header 'Authorization: Bearer ${MCPCTL_TOKEN_MONITORING}'\n"
    )
    assert 'export MCPCTL_TOKEN_MONITORING="$(cat ' in result.stderr
    assert mcpd.active["cc"] not in result.output


def test_claude_code_write_creates_a_committable_mcp_json_without_the_token(tmp_path: Path) -> None:
    mcpd = FakeMcpd()
    result = ok(mcpd, "--client", "claude-code", "--name", "cc", "--write")
    path = tmp_path / ".mcp.json"
    assert json.loads(path.read_text()) == {
        "mcpServers": {
            KEY: {
                "type": "http",
                "url": URL,
                "headers": {"Authorization": "Bearer ${MCPCTL_TOKEN_MONITORING}"},
            }
        }
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert f"wrote {KEY} to {path}\n" in result.stdout
    assert 'next: export MCPCTL_TOKEN_MONITORING="$(cat ' in result.stdout
    assert not (tmp_path / ".mcp.json.bak").exists()


def test_vscode_write_adds_a_secret_input_and_keeps_the_other_inputs_and_servers(tmp_path: Path) -> None:
    path = tmp_path / ".vscode" / "mcp.json"
    path.parent.mkdir()
    mine = {"type": "promptString", "id": f"{KEY}-token", "description": "old", "password": False}
    other = {"type": "promptString", "id": "gh", "description": "GitHub"}
    path.write_text(
        json.dumps({"inputs": [other, mine], "servers": {"gh": {"type": "stdio", "command": "gh"}}})
    )
    path.chmod(0o664)
    result = ok(FakeMcpd(), "--client", "vscode", "--write")
    data = json.loads(path.read_text())
    assert data["inputs"] == [
        other,
        {
            "type": "promptString",
            "id": f"{KEY}-token",
            "description": "mcpctl token for project monitoring",
            "password": True,
        },
    ]
    assert data["servers"]["gh"] == {"type": "stdio", "command": "gh"}
    assert data["servers"][KEY] == {
        "type": "http",
        "url": URL,
        "headers": {"Authorization": f"Bearer ${{input:{KEY}-token}}"},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert "VS Code" in result.stdout and "paste the contents of" in result.stdout


def test_write_merges_keeps_other_entries_keeps_the_mode_and_backs_up_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    old = {"mcpServers": {"other": {"command": "x"}, KEY: {"command": "stale"}}, "theme": "dark"}
    path.write_text(json.dumps(old))
    path.chmod(0o640)
    result = ok(FakeMcpd(), "--config-path", str(path), "--write")
    [backup] = (tmp_path / "home" / ".mcpctl" / "backups").iterdir()
    assert f"wrote {KEY} to {path} (backup: {backup})\n" in result.stdout
    data = json.loads(path.read_text())
    assert data["theme"] == "dark"
    assert data["mcpServers"]["other"] == {"command": "x"}
    assert data["mcpServers"][KEY]["args"] == ["stdio", "--project", "monitoring"]
    assert json.loads(backup.read_text()) == old and backup.name.startswith("claude.json.")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    assert not list(tmp_path.glob("claude.json.*"))  # nothing beside the file
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_writing_the_same_entry_again_leaves_the_file_alone() -> None:
    mcpd = FakeMcpd()
    ok(mcpd, "--client", "cursor", "--config-path", "c.json", "--write")
    before = Path("c.json").read_bytes()
    result = ok(mcpd, "--client", "cursor", "--config-path", "c.json", "--write")
    assert "unchanged" in result.stdout
    assert Path("c.json").read_bytes() == before and not list(Path().glob("**/c.json.*"))


def test_new_user_wide_files_are_private_and_new_committed_ones_are_readable(tmp_path: Path) -> None:
    ok(FakeMcpd(), "--client", "cursor", "--config-path", "u/mcp.json", "--write")
    assert stat.S_IMODE(Path("u/mcp.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(Path("u").stat().st_mode) == 0o700
    ok(FakeMcpd(), "--client", "vscode", "--write")
    assert stat.S_IMODE(Path(".vscode/mcp.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(Path(".vscode").stat().st_mode) == 0o755


def test_cursor_reads_the_token_from_an_env_interpolation() -> None:
    result = ok(FakeMcpd(), "--client", "cursor")
    assert json.loads(result.stdout) == {
        "mcpServers": {
            KEY: {"url": URL, "headers": {"Authorization": "Bearer ${env:MCPCTL_TOKEN_MONITORING}"}}
        }
    }
    assert "restart Cursor" in result.stderr


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"mcpServers": []}'])
def test_a_broken_config_file_is_refused_before_any_token_is_minted(tmp_path: Path, content: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(content)
    mcpd = FakeMcpd()
    result = run(mcpd, "--client", "cursor", "--config-path", str(path), "--write")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "nothing was written" in result.stderr
    assert path.read_text() == content
    assert mcpd.bodies == []


def test_vscode_inputs_that_are_not_a_list_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"inputs": {}}')
    result = run(FakeMcpd(), "--client", "vscode", "--config-path", str(path), "--write")
    assert result.exit_code == 1 and "nothing was written" in result.stderr


def test_config_path_without_write_is_a_usage_error() -> None:
    mcpd = FakeMcpd()
    result = run(mcpd, "--config-path", "x.json")
    assert result.exit_code == 2 and mcpd.bodies == []


def test_merging_replaces_our_input_by_id_and_appends_a_new_one() -> None:
    ours = {"id": "mine", "password": True}
    assert merged({"inputs": [{"id": "a"}, {"id": "mine"}, "junk"]}, {"inputs": [ours]})["inputs"] == [
        {"id": "a"},
        "junk",
        ours,
    ]
    assert merged({}, {"inputs": [ours], "servers": {"s": {}}}) == {"inputs": [ours], "servers": {"s": {}}}


def test_writing_through_a_symlink_updates_its_target(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "mcp.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    current = read_config_file(link, "mcpServers")
    write_config_file(
        current, merged(current.data, {"mcpServers": {"a": {}}}), 0o600, backup_dir=tmp_path / "b"
    )
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
        write_config_file(
            current, merged(current.data, {"mcpServers": {"a": {}}}), 0o600, backup_dir=tmp_path / "b"
        )
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


def test_rewriting_a_committed_file_that_held_a_raw_token_keeps_no_copy_in_the_repository(
    tmp_path: Path,
) -> None:
    # security review: a `.mcp.json` written by an earlier release held the raw token; its backup
    # must not land beside it (in the repository), and the user is told to revoke that token
    old = {"mcpServers": {KEY: {"type": "http", "headers": {"Authorization": "Bearer mcpctl_pat_OLDRAW"}}}}
    Path(".mcp.json").write_text(json.dumps(old))
    result = ok(FakeMcpd(), "--client", "claude-code", "--write")
    assert "mcpctl_pat_OLDRAW" not in Path(".mcp.json").read_text()
    assert sorted(p.name for p in Path().iterdir()) == [".mcp.json", "home"]
    [backup] = (tmp_path / "home" / ".mcpctl" / "backups").iterdir()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert "held a raw McpToken" in result.stdout and "mcpctl revoke mcptoken" in result.stdout
