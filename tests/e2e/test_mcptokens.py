"""The McpToken flows of DESIGN §4 end to end: the real mcpctl against a real mcpd (SQLite and
PostgreSQL): create → introspect ok → use on /api/v1/projects/<p>/… → revoke → introspect revoked
and 401; a 2 s token expires; a view-only user cannot mint a token with edit; token files and client
config files are written safely."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli, Mcpd, error_lines

pytestmark = pytest.mark.e2e

BACKENDS = ("sqlite", "postgresql")  # the database matters end to end here (conftest)

TOKEN_LEN = 60


@pytest.fixture(scope="module")
def project(admin: Cli) -> str:
    admin.ok("create", "server", "tk-docs", "--transport", "http", "--url", "https://docs.example.com/mcp")
    admin.ok("create", "project", "tk-proj", "--server", "tk-docs")
    return "tk-proj"


def _introspect(mcpd: Mcpd, token: str) -> dict[str, object]:
    response = httpx.get(
        f"{mcpd.url}/api/v1/mcptokens/introspect", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def _mint(admin: Cli, name: str, project: str, *flags: str) -> str:
    result = admin.ok("create", "mcptoken", name, "-p", project, *flags)
    token = result.stdout.strip()
    assert token.startswith("mcpctl_pat_") and len(token) == TOKEN_LEN, result.stdout
    return token


def test_a_token_is_created_used_and_revoked_through_the_cli(admin: Cli, project: str, mcpd: Mcpd) -> None:
    token = _mint(admin, "flow", project, "--bind", "role:view,resource:projects", "--description", "e2e")
    assert "once" in admin.ok("create", "mcptoken", "flow-2", "-p", project).stderr.lower()

    info = _introspect(mcpd, token)
    assert info["ok"] is True and info["tokenName"] == "flow" and info["project"] == project
    assert info["bindings"] == [{"role": "view", "resource": "projects"}]

    as_token = admin.with_token(token)
    shown = json.loads(as_token.ok("get", "project", project, "-o", "json").stdout)
    assert shown["metadata"]["name"] == project
    outside = as_token("get", "servers")
    assert outside.returncode == 1 and error_lines(outside.stderr)[0].startswith(
        "Error from server (Forbidden)"
    )

    listed = admin.ok("get", "mcptokens", "-p", project).stdout.splitlines()
    assert listed[0].split() == ["NAME", "PROJECT", "PREFIX", "CREATED", "LAST", "USED", "EXPIRES", "STATUS"]
    row = next(line for line in listed if line.startswith("flow "))
    assert token[len("mcpctl_pat_") : len("mcpctl_pat_") + 8] in row and "active" in row
    described = admin.ok("describe", "mcptoken", "flow", "-p", project).stdout
    assert "role:view,resource:projects" in described and token not in described

    assert admin.ok("revoke", "mcptoken", "flow", "-p", project).stdout.strip() == "mcptoken/flow revoked"
    assert _introspect(mcpd, token) == {"ok": False, "reason": "revoked"}
    refused = as_token("get", "project", project)
    assert refused.returncode == 1 and error_lines(refused.stderr)[0].startswith(
        "Error from server (Unauthorized)"
    )
    assert "revoked" in admin.ok("get", "mcptokens", "-p", project).stdout

    assert admin.ok("delete", "mcptoken", "flow-2", "-p", project).stdout.strip() == "mcptoken/flow-2 deleted"
    events = admin.json("get", "auditevents", "--token", "flow")
    assert {e["spec"]["kind"] for e in events["items"]} >= {"token_created", "token_revoked"}
    assert token not in mcpd.log()


def test_a_two_second_token_expires(admin: Cli, project: str, mcpd: Mcpd) -> None:
    token = _mint(admin, "short", project, "--ttl", "2s")
    assert _introspect(mcpd, token)["ok"] is True
    deadline = time.monotonic() + 10
    while _introspect(mcpd, token).get("ok") is True:
        assert time.monotonic() < deadline, "the token did not expire"
        time.sleep(0.2)
    assert _introspect(mcpd, token) == {"ok": False, "reason": "expired"}
    assert "expired" in admin.ok("get", "mcptokens", "-p", project).stdout


def test_a_view_only_user_cannot_mint_a_token_with_edit(admin: Cli, project: str, cli: Cli) -> None:
    admin.ok(
        "create",
        "user",
        "tk-viewer",
        "--email",
        "tk-viewer@example.com",
        "--password-stdin",
        input="viewer-pass-1\n",
    )
    admin.ok(
        "create",
        "rbac",
        "tk-viewer",
        "--subject",
        "User:tk-viewer@example.com",
        "--roleBindings",
        "role:view,resource:projects",
        "--roleBindings",
        "role:create,resource:mcptokens",
    )
    cli.login("tk-viewer@example.com", "viewer-pass-1")
    refused = cli("create", "mcptoken", "too-much", "-p", project, "--bind", "role:edit,resource:projects")
    assert refused.returncode == 1
    assert error_lines(refused.stderr)[0].startswith("Error from server (Forbidden)")
    assert "role:edit,resource:projects" in refused.stderr
    assert "too-much" not in admin.ok("get", "mcptokens", "-p", project).stdout
    # within its own rights it may
    assert cli.ok("create", "mcptoken", "fine", "-p", project, "--bind", "role:view,resource:projects").stdout


def test_write_file_stores_the_token_0600_without_temp_files(admin: Cli, project: str, mcpd: Mcpd) -> None:
    result = admin.ok("create", "mcptoken", "filed", "-p", project, "--write-file", "-o", "json")
    body = json.loads(result.stdout)
    path = Path(body["tokenPath"])
    assert path == mcpd.data_dir / "mcp-tokens" / project / "filed"
    assert path.read_text().strip() == body["token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["filed"]


def test_apply_treats_tokens_as_immutable(admin: Cli, project: str, tmp_path: Path) -> None:
    manifest = tmp_path / "token.yaml"
    manifest.write_text(
        f"kind: McpToken\nmetadata: {{name: applied, project: {project}}}\nspec: {{rbac: empty, ttl: 30d}}\n"
    )
    created = admin.ok("apply", "-f", str(manifest))
    assert "mcptoken/applied created" in created.stdout + created.stderr
    assert "mcpctl_pat_" in created.stdout
    again = admin.ok("apply", "-f", str(manifest))
    assert "mcptoken/applied unchanged" in again.stdout and "mcpctl_pat_" not in again.stdout
    exported = admin.ok("get", "mcptokens", "applied", "-p", project, "-o", "yaml").stdout
    assert "unchanged" in admin.ok("apply", "-f", "-", input=exported).stdout


def test_config_claude_write_merges_into_an_existing_config(admin: Cli, project: str, tmp_path: Path) -> None:
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}, "theme": "dark"}))
    admin.ok(
        "config",
        "claude",
        "-p",
        project,
        "--client",
        "claude-desktop",
        "--name",
        "desk",
        "--config-path",
        str(config),
        "--write",
    )
    merged = json.loads(config.read_text())
    assert merged["theme"] == "dark" and merged["mcpServers"]["other"] == {"command": "other-server"}
    entry = merged["mcpServers"][f"mcpctl-{project}"]
    assert Path(entry["command"]).is_absolute() and entry["args"] == ["stdio", "--project", project]
    token_file = Path(entry["env"]["MCPCTL_TOKEN_FILE"])
    assert token_file.read_text().strip().startswith("mcpctl_pat_")
    # the CLI's own backups directory, never beside the file
    [backup_file] = (admin.config.parent / "backups").glob("claude_desktop_config.json.*.bak")
    backup = json.loads(backup_file.read_text())
    assert backup == {"mcpServers": {"other": {"command": "other-server"}}, "theme": "dark"}
    assert sorted(os.listdir(tmp_path)) == ["claude_desktop_config.json"]


def test_malformed_and_unknown_tokens_are_unauthorized(admin: Cli, project: str, mcpd: Mcpd) -> None:
    token = _mint(admin, "typo", project)
    mistyped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert _introspect(mcpd, mistyped) == {"ok": False, "reason": "malformed"}
    response = httpx.get(
        f"{mcpd.url}/api/v1/projects/{project}", headers={"Authorization": f"Bearer {mistyped}"}
    )
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
