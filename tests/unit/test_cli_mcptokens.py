"""McpToken verbs: the requests they send (docs/api.md "McpTokens"), what they print (the raw token
once, alone on stdout), the `get` table, and `apply`'s immutability decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from mcpctl.cli.context import AppState
from mcpctl.cli.describe import describe_text
from mcpctl.cli.main import cli
from mcpctl.cli.mcptokens import body_from_manifest
from mcpctl.cli.printers import format_objects
from mcpctl.core.kinds import kind_for_noun

RAW = "mcpctl_pat_" + "A" * 43 + "B" * 6
NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
TOKENS = kind_for_noun("mcptokens")
assert TOKENS is not None


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    monkeypatch.setenv("MCPCTL_MCPD_URL", "http://mcpd.test")


def _iso(delta: timedelta, *, base: datetime | None = None) -> str:
    return ((base or NOW) + delta).isoformat().replace("+00:00", "Z")


def token_object(name: str, project: str = "monitoring", **status: Any) -> dict[str, Any]:
    return {
        "kind": "McpToken",
        "metadata": {"name": name, "project": project, "id": "0" * 32, "createdAt": _iso(-timedelta(days=2))},
        "spec": {"rbac": "empty", "bindings": []},
        "status": {
            "status": "active",
            "prefix": "AAAAAAAA",
            "tokenSha": "f" * 64,
            "owner": "admin@mcpctl.local",
            "expiresAt": None,
            "revokedAt": None,
            "lastUsedAt": None,
            "rbacDefinition": None,
            **status,
        },
    }


class FakeMcpd:
    """Records requests; serves the tokens in `tokens` ((project, name) → object); mints on POST."""

    def __init__(self, *objects: dict[str, Any], errors: dict[str, tuple[int, str]] | None = None) -> None:
        self.tokens = {(o["metadata"]["project"], o["metadata"]["name"]): o for o in objects}
        self.errors = errors or {}
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        query = request.url.query.decode()
        recorded = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path + (f"?{query}" if query else ""), recorded))
        key = f"{request.method} {path}"
        if key in self.errors:
            status, code = self.errors.pop(key)
            return httpx.Response(status, json={"error": {"code": code, "message": f"{code} here"}})
        parts = path.split("/")  # ['', 'api', 'v1', 'projects', P, 'mcptokens', N, ...]
        if request.method == "POST" and path.endswith("/mcptokens"):
            body.setdefault("project", parts[4] if parts[3] == "projects" else None)
            obj = token_object(body["name"], body["project"])
            self.tokens[(body["project"], body["name"])] = obj
            answer = {"token": RAW, "tokenPath": None, "clientConfig": {}, "mcpToken": obj}
            if body.get("writeFile"):
                answer["tokenPath"] = f"/data/mcp-tokens/{body['project']}/{body['name']}"
            return httpx.Response(201, json=answer)
        if request.method == "GET" and path.endswith("/mcptokens"):
            return httpx.Response(200, json={"kind": "List", "items": list(self.tokens.values())})
        if len(parts) >= 7 and parts[3] == "projects" and parts[5] == "mcptokens":
            obj = self.tokens.get((parts[4], parts[6]))
            if obj is None:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "not found"}})
            if request.method == "DELETE":
                return httpx.Response(204)
            if request.method == "POST" and parts[7:] == ["revoke"]:
                obj["status"]["status"] = "revoked"
            return httpx.Response(200, json=obj)
        if path == "/api/v1/audit/events":
            return httpx.Response(200, json={"kind": "List", "items": []})
        return httpx.Response(599, json={"error": {"code": "unexpected", "message": key}})


def run(fake: FakeMcpd, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, obj=AppState(transport=httpx.MockTransport(fake)))


def test_create_prints_the_raw_token_alone_on_stdout_and_the_note_on_stderr() -> None:
    fake = FakeMcpd()
    result = run(
        fake, "create", "mcptoken", "agent", "-p", "monitoring", "--ttl", "30d", "--description", "GPU"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == RAW + "\n"
    assert "mcptoken/agent created (project monitoring)" in result.stderr
    assert "This token is shown once; store it now." in result.stderr
    assert RAW not in result.stderr
    assert fake.requests == [
        (
            "POST",
            "/api/v1/mcptokens",
            {
                "name": "agent",
                "project": "monitoring",
                "rbac": "empty",
                "ttl": "30d",
                "description": "GPU",
                "writeFile": False,
            },
        )
    ]


def test_create_with_bindings_sends_rbac_bind_and_parsed_bindings_and_names_the_token_file() -> None:
    fake = FakeMcpd()
    result = run(
        fake,
        "create",
        "mcptoken",
        "ops",
        "-p",
        "monitoring",
        "--bind",
        "role:view,resource:servers",
        "--bind",
        "action:logs",
        "--write-file",
    )
    assert result.exit_code == 0, result.output
    assert fake.requests[0][2] == {
        "name": "ops",
        "project": "monitoring",
        "rbac": "bind",
        "bindings": [{"role": "view", "resource": "servers"}, {"role": "run", "action": "logs"}],
        "writeFile": True,
    }
    assert "/data/mcp-tokens/monitoring/ops" in result.stderr


def test_create_clone_sends_rbac_clone_without_bindings() -> None:
    fake = FakeMcpd()
    assert run(fake, "create", "mcptoken", "c", "-p", "monitoring", "--rbac", "clone").exit_code == 0
    assert fake.requests[0][2] == {"name": "c", "project": "monitoring", "rbac": "clone", "writeFile": False}


@pytest.mark.parametrize(
    "args",
    [
        ["create", "mcptoken", "t", "-p", "m", "--rbac", "clone", "--bind", "role:view,resource:servers"],
        ["create", "mcptoken", "t", "-p", "m", "--bind", "role:frob,resource:servers"],
        ["create", "mcptoken", "t", "-p", "m", "--ttl", "5x"],
        ["create", "mcptoken", "t", "-p", "m", "--ttl", "2020-01-01"],
        ["create", "mcptoken", "t", "-p", "m", "--ttl", "99999999d"],
        ["create", "mcptoken", "t"],
        ["get", "mcptokens", "agent"],
        ["get", "mcptokens", "-l", "a=b"],
        ["describe", "mcptoken", "agent"],
        ["describe", "server", "time", "-p", "monitoring"],
        ["delete", "mcptoken", "agent"],
        ["delete", "server", "time", "-p", "monitoring"],
        ["revoke", "mcptoken", "agent"],
        ["revoke", "server", "time", "-p", "monitoring"],
        ["patch", "mcptoken", "agent", "description=x"],
    ],
)
def test_usage_mistakes_exit_2_and_send_nothing(args: list[str]) -> None:
    fake = FakeMcpd()
    result = run(fake, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert fake.requests == []


def test_create_output_json_prints_the_whole_response() -> None:
    result = run(FakeMcpd(), "create", "mcptoken", "agent", "-p", "monitoring", "-o", "json")
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert answer["token"] == RAW and answer["mcpToken"]["kind"] == "McpToken"


def test_token_limit_exceeded_is_a_forbidden_server_error() -> None:
    fake = FakeMcpd(errors={"POST /api/v1/mcptokens": (403, "token_limit_exceeded")})
    result = run(fake, "create", "mcptoken", "agent", "-p", "monitoring")
    assert result.exit_code == 1
    assert result.stderr == "Error from server (Forbidden): token_limit_exceeded here\n"
    assert result.stdout == ""


def test_create_force_revokes_the_active_token_of_that_name_then_creates() -> None:
    fake = FakeMcpd(token_object("agent"), errors={"POST /api/v1/mcptokens": (409, "already_exists")})
    result = run(fake, "create", "mcptoken", "agent", "-p", "monitoring", "--force")
    assert result.exit_code == 0, result.output
    assert [r[:2] for r in fake.requests] == [
        ("POST", "/api/v1/mcptokens"),
        ("POST", "/api/v1/projects/monitoring/mcptokens/agent/revoke"),
        ("POST", "/api/v1/mcptokens"),
    ]
    assert result.stdout == RAW + "\n"


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["get", "mcptokens"], "/api/v1/mcptokens"),
        (["get", "mcptokens", "-p", "monitoring"], "/api/v1/projects/monitoring/mcptokens"),
        (["get", "mcptoken", "agent", "-p", "monitoring"], "/api/v1/projects/monitoring/mcptokens/agent"),
        (
            ["describe", "mcptoken", "agent", "-p", "monitoring"],
            "/api/v1/projects/monitoring/mcptokens/agent",
        ),
    ],
)
def test_reads_use_the_project_scoped_paths(args: list[str], path: str) -> None:
    fake = FakeMcpd(token_object("agent"))
    result = run(fake, *args)
    assert result.exit_code == 0, result.output
    assert fake.requests == [("GET", path, None)]
    assert RAW not in result.stdout


def test_delete_and_revoke_print_kind_slash_name_verbed() -> None:
    fake = FakeMcpd(token_object("a"), token_object("b"))
    deleted = run(fake, "delete", "mcptoken", "a", "b", "-p", "monitoring")
    revoked = run(fake, "revoke", "mcptoken", "a", "-p", "monitoring")
    assert deleted.stdout == "mcptoken/a deleted\nmcptoken/b deleted\n"
    assert revoked.stdout == "mcptoken/a revoked\n"
    assert [r[:2] for r in fake.requests] == [
        ("DELETE", "/api/v1/projects/monitoring/mcptokens/a"),
        ("DELETE", "/api/v1/projects/monitoring/mcptokens/b"),
        ("POST", "/api/v1/projects/monitoring/mcptokens/a/revoke"),
    ]


def test_audit_events_of_one_token_are_filtered_by_token_name() -> None:
    fake = FakeMcpd()
    assert run(fake, "get", "auditevents", "-p", "monitoring", "--token", "agent").exit_code == 0
    assert fake.requests[0][1] == "/api/v1/audit/events?project=monitoring&tokenName=agent"


def test_table_has_the_contract_columns_with_ages_expiry_and_status() -> None:
    objects = [
        token_object(
            "fresh", lastUsedAt=_iso(-timedelta(minutes=5)), expiresAt=_iso(timedelta(days=29, hours=1))
        ),
        token_object("old", status="revoked", revokedAt=_iso(-timedelta(hours=1))),
        token_object("gone", status="expired", expiresAt=_iso(-timedelta(days=1))),
    ]
    lines = format_objects(objects, TOKENS, "table", single=False, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "PROJECT", "PREFIX", "CREATED", "LAST", "USED", "EXPIRES", "STATUS"]
    assert "LAST USED" in lines[0]
    assert lines[1].split() == ["fresh", "monitoring", "AAAAAAAA", "2d", "5m", "in", "29d", "active"]
    assert lines[2].split() == ["old", "monitoring", "AAAAAAAA", "2d", "never", "never", "revoked"]
    assert lines[3].split() == ["gone", "monitoring", "AAAAAAAA", "2d", "never", "1d", "ago", "expired"]
    wide = format_objects(objects, TOKENS, "wide", single=False, now=NOW).splitlines()[0]
    assert wide.split()[-3:] == ["RBAC", "OWNER", "DESCRIPTION"]


def test_status_is_worked_out_when_mcpd_does_not_say() -> None:
    obj = token_object("t", expiresAt=_iso(-timedelta(seconds=5)))
    del obj["status"]["status"]
    assert format_objects([obj], TOKENS, "table", single=False, now=NOW).splitlines()[1].endswith("expired")


def test_describe_shows_bindings_in_the_flag_grammar_and_never_a_token() -> None:
    obj = token_object("ops", rbacDefinition="mcptoken-monitoring-ops")
    obj["spec"] = {
        "rbac": "bind",
        "bindings": [{"role": "view", "resource": "servers"}, {"role": "run", "action": "logs"}],
    }
    text = describe_text(obj, NOW)
    assert "Project:  monitoring" in text
    assert "\n  role:view,resource:servers\n  action:logs\n" in text
    assert "Expires At:       never" in text
    assert "mcpctl_pat_" not in text


def _yaml_of(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump({"kind": "List", "items": list(objects)})


def test_apply_leaves_an_active_token_alone_even_from_get_output_with_status() -> None:
    fake = FakeMcpd(token_object("agent"))
    result = run(fake, "apply", "-f", "-", stdin=_yaml_of(token_object("agent")))
    assert result.exit_code == 0, result.output
    assert result.stdout == "mcptoken/agent unchanged\n"
    assert fake.requests == [("GET", "/api/v1/projects/monitoring/mcptokens/agent", None)]
    assert result.stderr == ""


@pytest.mark.parametrize("existing", [None, "revoked", "expired"])
def test_apply_creates_a_missing_or_inactive_token_and_prints_it_once(existing: str | None) -> None:
    fake = FakeMcpd(*([token_object("agent", status=existing)] if existing else []))
    manifest = (
        "kind: McpToken\nmetadata: {name: agent, project: monitoring}\nspec: {ttl: 30d, description: box}\n"
    )
    result = run(fake, "apply", "-f", "-", stdin=manifest)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"mcptoken/agent created\n{RAW}\n"
    assert fake.requests[-1] == (
        "POST",
        "/api/v1/mcptokens",
        {
            "name": "agent",
            "project": "monitoring",
            "rbac": "empty",
            "ttl": "30d",
            "description": "box",
            "writeFile": False,
        },
    )


def test_apply_dry_run_reports_without_creating() -> None:
    fake = FakeMcpd()
    manifest = "kind: McpToken\nmetadata: {name: agent, project: monitoring}\nspec: {rbac: empty}\n"
    result = run(fake, "apply", "-f", "-", "--dry-run", stdin=manifest)
    assert result.stdout == "mcptoken/agent created (dry run)\n"
    assert [r[0] for r in fake.requests] == ["GET"]


def test_apply_warns_when_an_immutable_token_differs_from_its_manifest() -> None:
    fake = FakeMcpd(token_object("agent"))
    manifest = "kind: McpToken\nmetadata: {name: agent, project: monitoring}\nspec: {rbac: clone}\n"
    result = run(fake, "apply", "-f", "-", stdin=manifest)
    assert result.stdout == "mcptoken/agent unchanged\n"
    assert "not applied: rbac" in result.stderr


def test_apply_server_errors_name_the_object_and_exit_1() -> None:
    fake = FakeMcpd(errors={"GET /api/v1/projects/monitoring/mcptokens/agent": (403, "forbidden")})
    result = run(fake, "apply", "-f", "-", stdin=_yaml_of(token_object("agent")))
    assert result.exit_code == 1
    assert result.stderr == "Error from server (Forbidden): mcptoken/agent: forbidden here\n"


@pytest.mark.parametrize(
    ("spec", "rbac", "bindings"),
    [
        ({}, "empty", None),
        (
            {"bindings": [{"role": "view", "resource": "servers"}]},
            "bind",
            [{"role": "view", "resource": "servers"}],
        ),
        ({"rbac": "clone", "bindings": [{"role": "view", "resource": "*"}]}, "clone", None),  # a snapshot
    ],
)
def test_manifest_body_keeps_bindings_only_for_rbac_bind(
    spec: dict[str, Any], rbac: str, bindings: list[dict[str, str]] | None
) -> None:
    body = body_from_manifest(
        {"metadata": {"name": "t", "project": "p", "id": "x"}, "spec": spec, "status": {}}
    )
    assert body["rbac"] == rbac and body.get("bindings") == bindings
    assert set(body) <= {"name", "project", "rbac", "bindings", "ttl", "description", "writeFile"}


def test_apply_checks_only_the_form_of_a_ttl_so_a_past_date_stays_unchanged_for_an_active_token() -> None:
    fake = FakeMcpd(token_object("agent"))
    manifest = "kind: McpToken\nmetadata: {name: agent, project: monitoring}\nspec: {ttl: '2020-01-01'}\n"
    assert run(fake, "apply", "-f", "-", stdin=manifest).stdout == "mcptoken/agent unchanged\n"
    bad = run(fake, "apply", "-f", "-", stdin=manifest.replace("2020-01-01", "soon"))
    assert bad.exit_code == 1 and "spec.ttl: invalid ttl 'soon'" in bad.stderr


def test_an_mcptoken_bearer_mints_under_its_project_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_TOKEN", RAW)
    fake = FakeMcpd()
    fake.errors["POST /api/v1/mcptokens"] = (403, "forbidden")  # what mcpd answers a token there
    result = run(fake, "create", "mcptoken", "child", "-p", "monitoring")
    assert result.exit_code == 0 and result.stdout == RAW + "\n"
    assert fake.requests == [
        (
            "POST",
            "/api/v1/projects/monitoring/mcptokens",
            {"name": "child", "rbac": "empty", "writeFile": False},
        )
    ]
