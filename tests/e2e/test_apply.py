"""`apply -f` of one multi-document file: created, then unchanged, and `--dry-run` changes nothing;
`get -o yaml | apply -f -` round-trips every kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Cli, Mcpd

pytestmark = pytest.mark.e2e

BACKENDS = ("sqlite", "postgresql")  # the database matters end to end here (conftest)


def _manifest(p: str, *, replicas: int = 2, url: str = "https://docs.example.com/mcp") -> str:
    """User, group, secret, two servers and a project, every name prefixed with `p`, ordered so each
    reference (group → user, server → secret, project → servers) is to an object already applied."""
    return f"""\
kind: User
metadata: {{name: {p}-bob}}
spec: {{email: {p}-bob@example.com, displayName: Bob, password: s3cret-Pass}}
---
kind: Group
metadata: {{name: {p}-devs}}
spec: {{members: [{p}-bob@example.com]}}
---
kind: Secret
metadata: {{name: {p}-grafana}}
spec: {{data: {{TOKEN: glsa_xxx}}}}
---
kind: Server
metadata: {{name: {p}-grafana, labels: {{team: obs}}}}
spec:
  transport: stdio
  command: uvx
  args: [mcp-grafana]
  env:
    GRAFANA_URL: "http://grafana:3000"
    GRAFANA_TOKEN: {{secretRef: {{name: {p}-grafana, key: TOKEN}}}}
  replicas: {replicas}
---
kind: Server
metadata: {{name: {p}-docs}}
spec: {{transport: http, url: "{url}"}}
---
kind: Project
metadata: {{name: {p}-monitoring}}
spec: {{servers: [{p}-grafana, {p}-docs], proxyModel: default, toolPrefixMode: always}}
"""


_SINGULAR = {
    "users": "user",
    "groups": "group",
    "rbac": "rbac",
    "projects": "project",
    "servers": "server",
    "secrets": "secret",
    "prompts": "prompt",
    "proxymodels": "proxymodel",
}


def _refs(p: str) -> list[str]:
    return [
        f"user/{p}-bob",
        f"group/{p}-devs",
        f"secret/{p}-grafana",
        f"server/{p}-grafana",
        f"server/{p}-docs",
        f"project/{p}-monitoring",
    ]


def test_applying_a_multi_document_file_creates_every_object(
    mcpd: Mcpd, admin: Cli, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text(_manifest("ap1"))

    result = admin("apply", "-f", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{ref} created" for ref in _refs("ap1")]
    assert admin.json("get", "group", "ap1-devs")["spec"]["members"] == ["ap1-bob@example.com"]
    server = admin.json("get", "server", "ap1-grafana")
    assert server["spec"]["env"]["GRAFANA_TOKEN"] == {"secretRef": {"name": "ap1-grafana", "key": "TOKEN"}}
    assert server["spec"]["replicas"] == 2
    assert admin.json("get", "project", "ap1-monitoring")["spec"]["servers"] == ["ap1-grafana", "ap1-docs"]
    cli.login("ap1-bob@example.com", "s3cret-Pass")  # the password in the file was set


def test_reapplying_the_same_file_reports_every_object_unchanged(admin: Cli, tmp_path: Path) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text(_manifest("ap2"))
    admin.ok("apply", "-f", str(path))

    result = admin("apply", "-f", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{ref} unchanged" for ref in _refs("ap2")]


def test_reapplying_objects_that_name_an_email_with_capitals_is_unchanged(admin: Cli, tmp_path: Path) -> None:
    # mcpd stores e-mail addresses in lower case; the file still says what the user typed
    path = tmp_path / "objects.yaml"
    path.write_text(
        "kind: User\nmetadata: {name: ap4-carol}\nspec: {email: Ap4-Carol@Example.COM}\n---\n"
        "kind: Group\nmetadata: {name: ap4-devs}\nspec: {members: [Ap4-Carol@Example.COM]}\n---\n"
        "kind: RbacDefinition\nmetadata: {name: ap4-view}\n"
        "spec: {subjects: [User:Ap4-Carol@Example.COM], roleBindings: [{role: view, resource: projects}]}\n"
    )
    admin.ok("apply", "-f", str(path))
    before = admin.json("get", "user", "ap4-carol")

    result = admin("apply", "-f", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "user/ap4-carol unchanged",
        "group/ap4-devs unchanged",
        "rbac/ap4-view unchanged",
    ]
    assert admin.json("get", "user", "ap4-carol")["metadata"]["updatedAt"] == before["metadata"]["updatedAt"]


def test_dry_run_of_a_modified_file_reports_configured_and_changes_nothing(
    admin: Cli, tmp_path: Path
) -> None:
    original = tmp_path / "objects.yaml"
    original.write_text(_manifest("ap3"))
    admin.ok("apply", "-f", str(original))
    before = admin.json("get", "servers", "ap3-grafana", "ap3-docs")
    modified = tmp_path / "modified.yaml"
    modified.write_text(_manifest("ap3", replicas=3, url="https://docs2.example.com/mcp"))

    result = admin("apply", "-f", str(modified), "--dry-run")

    assert result.returncode == 0, result.stderr
    results = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert list(results) == _refs("ap3")
    changed = {"server/ap3-grafana", "server/ap3-docs"}
    for ref, outcome in results.items():
        assert outcome.split()[0] == ("configured" if ref in changed else "unchanged"), result.stdout
    assert admin.json("get", "servers", "ap3-grafana", "ap3-docs") == before


@pytest.fixture(scope="module")
def round_trip_objects(admin: Cli, tmp_path_factory: pytest.TempPathFactory) -> None:
    """One of each kind, with labels, secret references, members and name-narrowed bindings."""
    path = tmp_path_factory.mktemp("round-trip") / "objects.yaml"
    path.write_text(_manifest("rt"))
    admin.ok("apply", "-f", str(path))
    admin.ok(
        "create",
        "rbac",
        "rt-view",
        "--subject",
        "User:rt-bob@example.com",
        "--subject",
        "Group:rt-devs",
        "--roleBindings",
        "role:view,resource:projects",
        "--roleBindings",
        "role:run,resource:servers,name:rt-grafana",
        "--roleBindings",
        "action:logs",
        "--label",
        "tier=dev",
    )
    admin.ok(
        "create", "proxymodel", "rt-lean", "--stage", "gate:tools=5", "--stage", "paginate:pageBytes=8192"
    )
    admin.ok("patch", "project", "rt-monitoring", "proxyModel=rt-lean")
    admin.ok(
        "create", "prompt", "rt-triage", "-p", "rt-monitoring", "--text", "Dashboards first.",
        "--priority", "8", "--tag", "oncall", "--label", "tier=dev",
    )  # fmt: skip


@pytest.mark.usefixtures("round_trip_objects")
@pytest.mark.parametrize(
    "noun", ["users", "groups", "rbac", "projects", "servers", "secrets", "prompts", "proxymodels"]
)
def test_get_as_yaml_applied_back_reports_every_object_unchanged(admin: Cli, noun: str) -> None:
    exported = admin.ok("get", noun, "-o", "yaml").stdout

    result = admin("apply", "-f", "-", input=exported)

    assert result.returncode == 0, result.stderr
    names = [item["metadata"]["name"] for item in yaml.safe_load(exported)["items"]]
    assert names, "nothing to round-trip"
    assert result.stdout.splitlines() == [f"{_SINGULAR[noun]}/{name} unchanged" for name in names]
    if noun == "secrets":  # the masked values went back, and the stored ones were kept
        secret = admin.json("get", "secret", "rt-grafana", "--show-values")
        assert secret["spec"]["data"] == {"TOKEN": "glsa_xxx"}


@pytest.mark.usefixtures("round_trip_objects")
def test_prompts_and_proxy_models_made_by_the_cli_read_back(admin: Cli) -> None:
    prompt = admin.json("get", "prompt", "rt-triage", "-p", "rt-monitoring")
    assert prompt["metadata"]["project"] == "rt-monitoring"
    assert prompt["spec"] == {"text": "Dashboards first.", "priority": 8, "tags": ["oncall"]}
    lean = admin.json("get", "proxymodel", "rt-lean")
    assert lean["spec"]["stages"] == [
        {"type": "gate", "config": {"tools": 5}},
        {"type": "paginate", "config": {"pageBytes": 8192}},
    ]
    assert lean["status"] == {"builtIn": False, "projects": ["rt-monitoring"]}
    refused = admin("delete", "proxymodel", "gate")
    assert refused.returncode == 1 and refused.stderr.startswith("Error from server (Conflict)")
    unknown = admin("patch", "project", "rt-monitoring", "proxyModel=nope")
    assert unknown.returncode == 1 and unknown.stderr.startswith("Error from server (BadRequest)")
