"""The credentials file (0600 in a 0700 dir, $MCPCTL_CONFIG), env overrides, login/logout/status."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from mcpctl.cli.config import DEFAULT_MCPD_URL, Config, load_config, resolve, save_config
from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / ".mcpctl" / "config.yaml"
    monkeypatch.setenv("MCPCTL_CONFIG", str(path))
    monkeypatch.delenv("MCPCTL_TOKEN", raising=False)
    monkeypatch.delenv("MCPCTL_MCPD_URL", raising=False)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_config_is_0600_in_a_0700_directory(config_file: Path) -> None:
    save_config(config_file, Config(mcpd_url="http://h:1", token="t", email="a@b.c"))
    assert _mode(config_file) == 0o600
    assert _mode(config_file.parent) == 0o700
    assert yaml.safe_load(config_file.read_text()) == {
        "mcpdUrl": "http://h:1",
        "token": "t",
        "email": "a@b.c",
    }
    save_config(config_file, Config(mcpd_url="http://h:1"))
    assert _mode(config_file) == 0o600
    assert load_config(config_file) == Config(mcpd_url="http://h:1")
    assert [p.name for p in config_file.parent.iterdir()] == ["config.yaml"]


def test_missing_config_is_empty_and_a_broken_one_is_an_error(config_file: Path) -> None:
    assert load_config(config_file) == Config()
    config_file.parent.mkdir(parents=True)
    config_file.write_text("- not a mapping\n")
    result = CliRunner().invoke(cli, ["get", "servers"])
    assert result.exit_code == 1 and result.stderr.startswith("error: ")


def test_flag_beats_env_beats_file_beats_default() -> None:
    config = Config(mcpd_url="http://file:1", token="file-token")
    assert resolve(Config(), url_flag=None, environ={}).mcpd_url == DEFAULT_MCPD_URL
    assert resolve(config, url_flag=None, environ={}).mcpd_url == "http://file:1"
    env = {"MCPCTL_MCPD_URL": "http://env:2/", "MCPCTL_TOKEN": "env-token"}
    resolved = resolve(config, url_flag=None, environ=env)
    assert (resolved.mcpd_url, resolved.token, resolved.token_source) == ("http://env:2", "env-token", "env")
    assert resolve(config, url_flag="http://flag:3", environ=env).mcpd_url == "http://flag:3"
    assert resolve(config, url_flag=None, environ={}).token_source == "file"


def _mcpd(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/auth/login":
            body = json.loads(request.content)
            if body["password"] != "right-password":
                return httpx.Response(
                    401, json={"error": {"code": "unauthenticated", "message": "invalid email or password"}}
                )
            return httpx.Response(200, json={"token": "new-session", "expiresAt": None, "user": {}})
        if request.url.path == "/api/v1/auth/logout":
            return httpx.Response(204)
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if request.url.path == "/api/v1/auth/me":
            return httpx.Response(
                200,
                json={
                    "user": {"kind": "User", "metadata": {"name": "admin"}, "spec": {"email": "admin@x.io"}},
                    "groups": ["admins"],
                    "bindings": [],
                },
            )
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no route"}})

    return httpx.MockTransport(handler)


def run(seen: list[httpx.Request], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, obj=AppState(transport=_mcpd(seen)))


def test_login_stores_url_token_and_email_privately(config_file: Path) -> None:
    seen: list[httpx.Request] = []
    result = run(
        seen,
        "login",
        "--mcpd-url",
        "http://mcpd.test:3000",
        "--email",
        "admin@x.io",
        "--password-stdin",
        stdin="right-password\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Logged in as admin@x.io\n"
    assert "new-session" not in result.output
    assert str(seen[0].url) == "http://mcpd.test:3000/api/v1/auth/login"
    assert "authorization" not in seen[0].headers
    assert load_config(config_file) == Config("http://mcpd.test:3000", "new-session", "admin@x.io")
    assert _mode(config_file) == 0o600

    result = run(seen, "status")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "mcpd:  http://mcpd.test:3000 (reachable)",
        "user:  admin@x.io (groups: admins)",
    ]
    assert seen[-1].headers["authorization"] == "Bearer new-session"

    result = run(seen, "logout")
    assert result.exit_code == 0 and result.stdout == "Logged out\n"
    assert load_config(config_file) == Config("http://mcpd.test:3000", None, "admin@x.io")
    assert run(seen, "status").stdout.splitlines()[1] == "user:  not logged in"


def test_wrong_password_is_unauthorized_and_stores_nothing(config_file: Path) -> None:
    result = run([], "login", "--email", "admin@x.io", "--password-stdin", stdin="wrong\n")
    assert result.exit_code == 1
    assert result.stderr == "Error from server (Unauthorized): invalid email or password\n"
    assert not config_file.exists()


def test_login_without_a_terminal_needs_email_and_password_stdin(config_file: Path) -> None:
    assert run([], "login", "--password-stdin", stdin="pw\n").exit_code == 2
    assert run([], "login", "--email", "a@b.c").exit_code == 2
    assert run([], "login", "--email", "a@b.c", "--password-stdin", stdin="").exit_code == 2


def test_login_prompts_for_what_is_missing_on_a_terminal(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mcpctl.cli.login._stdin_is_tty", lambda: True)
    result = run([], "login", stdin="admin@x.io\nright-password\n")
    assert result.exit_code == 0, result.output
    assert "right-password" not in result.output
    assert load_config(config_file).token == "new-session"


def test_apply_of_a_missing_file_is_an_error(config_file: Path) -> None:
    result = run([], "apply", "-f", str(config_file.parent / "nope.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read ")
