"""The requests each verb sends: paths, query parameters and bodies as docs/api.md gives them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    monkeypatch.setenv("MCPCTL_MCPD_URL", "http://mcpd.test")


class Recorder:
    """A fake mcpd: records requests, echoes bodies back, knows project `monitoring`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        query = request.url.query.decode()
        path = request.url.raw_path.decode().partition("?")[0]
        self.requests.append((request.method, path + (f"?{query}" if query else ""), body))
        if request.method == "GET" and request.url.path == "/api/v1/projects/monitoring":
            return httpx.Response(
                200,
                json={"kind": "Project", "metadata": {"name": "monitoring"}, "spec": {"servers": ["docs"]}},
            )
        if request.method == "GET" and "/servers/" not in request.url.path:
            return httpx.Response(200, json={"kind": "List", "items": []})
        if request.method == "DELETE":
            return httpx.Response(204)
        status = 201 if request.method == "POST" else 200
        return httpx.Response(status, json=body or {}, headers={"Mcpctl-Result": "configured"})


def run(recorder: Recorder, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, list(args), input=stdin, obj=AppState(transport=httpx.MockTransport(recorder))
    )


def test_create_server_with_project_creates_then_appends_it_to_the_project() -> None:
    rec = Recorder()
    result = run(
        rec,
        "create",
        "server",
        "grafana",
        "--transport",
        "stdio",
        "--command",
        "uvx",
        "--arg",
        "mcp-grafana",
        "--env",
        "URL=http://g:3000",
        "--env-secret",
        "TOKEN=grafana:TOKEN",
        "--replicas",
        "2",
        "--label",
        "team=obs",
        "--description",
        "Grafana",
        "--project",
        "monitoring",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["server/grafana created", "project/monitoring patched"]
    assert [r[:2] for r in rec.requests] == [
        ("GET", "/api/v1/projects/monitoring"),
        ("POST", "/api/v1/servers"),
        ("PATCH", "/api/v1/projects/monitoring"),
    ]
    assert rec.requests[1][2] == {
        "kind": "Server",
        "metadata": {"name": "grafana", "labels": {"team": "obs"}},
        "spec": {
            "transport": "stdio",
            "command": "uvx",
            "args": ["mcp-grafana"],
            "env": {"URL": "http://g:3000", "TOKEN": {"secretRef": {"name": "grafana", "key": "TOKEN"}}},
            "replicas": 2,
            "description": "Grafana",
        },
    }
    assert rec.requests[2][2] == {"spec": {"servers": ["docs", "grafana"]}}


def test_create_http_server_parses_headers() -> None:
    rec = Recorder()
    result = run(
        rec,
        "create",
        "server",
        "docs",
        "--transport",
        "http",
        "--url",
        "https://d/mcp",
        "--header",
        "X-Team:  obs",
        "--header-secret",
        "Authorization=grafana:TOKEN",
        "-o",
        "name",
    )
    assert result.exit_code == 0 and result.stdout == "server/docs\n"
    assert rec.requests[0][2]["spec"] == {
        "transport": "http",
        "url": "https://d/mcp",
        "headers": {"X-Team": "obs", "Authorization": {"secretRef": {"name": "grafana", "key": "TOKEN"}}},
    }


def test_create_rbac_sends_parsed_bindings_and_force_replaces() -> None:
    rec = Recorder()
    result = run(
        rec,
        "create",
        "rbac",
        "viewers",
        "--subject",
        "Group:devs",
        "--subject",
        "User:Bob@X.io",
        "--roleBindings",
        "role:view,resource:servers",
        "--roleBindings",
        "action:logs",
        "--roleBindings",
        "role:run,resource:servers,name:time",
        "--force",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "rbac/viewers configured\n"
    method, path, body = rec.requests[0]
    assert (method, path) == ("PUT", "/api/v1/rbac/viewers")
    assert body["kind"] == "RbacDefinition"
    assert body["spec"] == {
        "subjects": ["Group:devs", "User:bob@x.io"],
        "roleBindings": [
            {"role": "view", "resource": "servers"},
            {"role": "run", "action": "logs"},
            {"role": "run", "resource": "servers", "name": "time"},
        ],
    }


def test_create_dry_run_and_other_kinds() -> None:
    rec = Recorder()
    assert (
        run(
            rec,
            "create",
            "project",
            "monitoring",
            "--server",
            "a",
            "--server",
            "b",
            "--proxy-model",
            "gate",
            "--tool-prefix-mode",
            "never",
            "--dry-run",
        ).stdout
        == "project/monitoring created (dry run)\n"
    )
    assert rec.requests[-1][1] == "/api/v1/projects?dryRun=true"
    assert rec.requests[-1][2]["spec"] == {
        "servers": ["a", "b"],
        "proxyModel": "gate",
        "toolPrefixMode": "never",
    }
    run(rec, "create", "user", "bob", "--email", "bob@x.io", "--password-stdin", stdin="pa ss\n")
    assert rec.requests[-1][2]["spec"] == {"email": "bob@x.io", "password": "pa ss"}
    run(rec, "create", "group", "devs", "--member", "bob@x.io")
    assert rec.requests[-1][2]["spec"] == {"members": ["bob@x.io"]}
    run(rec, "create", "secret", "s", "--data", "A=x=y", "--data", "B=")
    assert rec.requests[-1][2]["spec"] == {"data": {"A": "x=y", "B": ""}}


def test_get_passes_selectors_project_and_show_values() -> None:
    rec = Recorder()
    run(rec, "get", "srv", "-l", "team=obs")
    run(rec, "get", "servers", "-p", "monitoring")
    run(rec, "get", "secrets", "--show-values")
    run(rec, "get", "audit", "-p", "monitoring", "--token", "agent", "--since", "1h", "--limit", "5")
    assert [r[1] for r in rec.requests] == [
        "/api/v1/servers?labelSelector=team%3Dobs",
        "/api/v1/projects/monitoring/servers",
        "/api/v1/secrets?showValues=true",
        "/api/v1/audit/events?project=monitoring&tokenName=agent&since=1h&limit=5",
    ]


def test_empty_table_says_no_resources_found_on_stderr() -> None:
    result = run(Recorder(), "get", "users")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == "No resources found.\n"


def test_delete_and_patch() -> None:
    rec = Recorder()
    result = run(rec, "delete", "server", "a", "b", "--force")
    assert result.stdout == "server/a deleted\nserver/b deleted\n"
    assert [r[1] for r in rec.requests] == ["/api/v1/servers/a?force=true", "/api/v1/servers/b?force=true"]
    result = run(
        rec, "patch", "srv", "time", "replicas=3", "labels.team=obs", "--merge", '{"spec": {"cwd": "/tmp"}}'
    )
    assert result.stdout == "server/time patched\n"
    assert rec.requests[-1] == (
        "PATCH",
        "/api/v1/servers/time",
        {"spec": {"cwd": "/tmp", "replicas": 3}, "metadata": {"labels": {"team": "obs"}}},
    )


def test_names_are_path_encoded() -> None:
    rec = Recorder()
    run(rec, "delete", "server", "../users/admin", "..")
    assert [r[1] for r in rec.requests] == ["/api/v1/servers/..%2Fusers%2Fadmin", "/api/v1/servers/%2E%2E"]
