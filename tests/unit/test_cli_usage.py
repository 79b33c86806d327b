"""Exit codes: usage mistakes are 2 with `error: …` naming the problem, and nothing is sent."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    monkeypatch.delenv("MCPCTL_MCPD_URL", raising=False)


def _no_requests(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing may be sent, got {request.method} {request.url}")


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, list(args), input=stdin, obj=AppState(transport=httpx.MockTransport(_no_requests))
    )


def test_unknown_noun_is_a_usage_error() -> None:
    result = run("get", "gizmos")
    assert result.exit_code == 2
    assert result.stderr.startswith('error: unknown resource type "gizmos"')


@pytest.mark.parametrize(
    ("binding", "bad_part"),
    [
        ("role:frob,resource:servers", "'frob'"),
        ("role:view,resource:gizmos", "'gizmos'"),
        ("role:view", "missing 'resource'"),
        ("role:view,resource:servers,colour:red", "'colour'"),
        ("action:logs,resource:servers", "'action'"),
        ("role:view,role:edit,resource:servers", "duplicate key 'role'"),
        ("role:,resource:servers", "empty value"),
    ],
)
def test_bad_role_binding_is_a_usage_error_naming_the_bad_part(binding: str, bad_part: str) -> None:
    result = run("create", "rbac", "viewers", "--subject", "User:a@b.c", "--roleBindings", binding)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --roleBindings: ")
    assert bad_part in result.stderr


def test_bad_subject_is_a_usage_error() -> None:
    result = run("create", "rbac", "viewers", "--subject", "Robot:x", "--roleBindings", "action:logs")
    assert result.exit_code == 2
    assert "Robot" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["get", "servers", "--bogus"],
        ["get", "servers", "-o", "xml"],
        ["get", "projects", "-p", "p"],
        ["get", "servers", "--token", "t"],
        ["get", "servers", "a", "-l", "team=obs"],
        ["get", "users", "--show-values"],
        ["get", "audit", "some-id"],
        ["describe", "audit", "some-id"],
        ["delete", "auditevents", "x"],
        ["delete", "servers"],
        ["patch", "server", "time"],
        ["patch", "server", "time", "--merge", "[1]"],
        ["patch", "server", "time", "metadata.name=x"],
        ["create", "server", "s", "--transport", "ftp"],
        ["create", "server", "s", "--transport", "stdio", "--url", "http://x"],
        ["create", "server", "s", "--transport", "http", "--command", "uvx"],
        ["create", "server", "s", "--transport", "stdio", "--env", "NOEQUALS"],
        ["create", "server", "s", "--transport", "stdio", "--env-secret", "K=nocolon"],
        ["create", "server", "s", "--transport", "http", "--header", "no colon"],
        ["create", "secret", "s", "--data", "A=1", "--data", "A=2"],
        ["create", "user", "u"],
        ["create", "rbac", "r", "--roleBindings", "action:logs"],
        ["create", "gizmo", "x"],
        ["apply"],
        ["completion", "powershell"],
    ],
)
def test_usage_mistakes_exit_2_with_an_error_line(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")


def test_kinds_mcpd_does_not_serve_yet_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from mcpctl.cli import nouns

    gizmo = replace(nouns.kind_for_noun("secrets"), kind="Gizmo", plural="gizmos", served=False)  # type: ignore[arg-type]
    monkeypatch.setattr(nouns, "kind_for_noun", lambda noun: gizmo)
    result = run("get", "gizmos")
    assert result.exit_code == 1
    assert result.stderr == "error: gizmos are not served by this version of mcpd yet\n"


@pytest.mark.parametrize(
    "args",
    [
        ["get", "prompt", "triage"],
        ["describe", "prompt", "triage"],
        ["delete", "prompt", "triage"],
        ["patch", "prompt", "triage", "priority=1"],
        ["create", "prompt", "triage", "--text", "t"],
        ["create", "prompt", "triage", "-p", "p"],
        ["create", "prompt", "triage", "-p", "p", "--text", "t", "--text-file", "-"],
        ["create", "prompt", "triage", "-p", "p", "--text", "t", "--priority", "11"],
        ["create", "proxymodel", "lean", "--stage", ":a=1"],
        ["create", "proxymodel", "lean", "--stage", "paginate:pageBytes"],
        ["get", "proxymodels", "-p", "p"],
        ["patch", "proxymodel", "lean", "-p", "p", "stages=[]"],
    ],
)
def test_prompt_and_proxymodel_usage_mistakes_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") or "Error:" in result.stderr


def test_completion_prints_a_script_for_the_mcpctl_program() -> None:
    for shell in ("bash", "zsh", "fish"):
        result = run("completion", shell)
        assert result.exit_code == 0
        assert "_MCPCTL_COMPLETE" in result.stdout
