"""Prompt and ProxyModel verbs (DESIGN §2, §9, §10): the requests they send, the `get` tables, and
`get -o yaml | apply -f -` sending back what it read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli
from mcpctl.cli.nouns import complete_noun

CREATED = "2026-11-21T12:00:00Z"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    monkeypatch.setenv("MCPCTL_MCPD_URL", "http://mcpd.test")


def prompt_object(name: str = "triage", project: str = "monitoring") -> dict[str, Any]:
    return {
        "kind": "Prompt",
        "metadata": {
            "name": name,
            "project": project,
            "id": "0" * 32,
            "createdAt": CREATED,
            "updatedAt": CREATED,
        },
        "spec": {"text": "Look at the dashboards first.", "priority": 8, "tags": ["oncall", "grafana"]},
        "status": {"bytes": 29},
    }


GATE = {
    "kind": "ProxyModel",
    "metadata": {"name": "gate"},
    "spec": {"stages": [{"type": "gate", "config": {}}], "description": "progressive disclosure"},
    "status": {"builtIn": True, "projects": []},
}
LEAN = {
    "kind": "ProxyModel",
    "metadata": {"name": "lean", "id": "1" * 32, "createdAt": CREATED, "updatedAt": CREATED},
    "spec": {"stages": [{"type": "gate", "config": {"tools": 5}}, {"type": "paginate", "config": {}}]},
    "status": {"builtIn": False, "projects": ["monitoring"]},
}


class FakeMcpd:
    """Records requests; answers with `answers[(method, path)]` (an object, or a list of items)."""

    def __init__(self, answers: dict[tuple[str, str], Any] | None = None) -> None:
        self.answers = answers or {}
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        query = request.url.query.decode()
        path = request.url.path
        self.requests.append((request.method, path + (f"?{query}" if query else ""), body))
        answer = self.answers.get((request.method, path))
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "PUT":
            return httpx.Response(200, json=body, headers={"Mcpctl-Result": "unchanged"})
        if request.method in ("POST", "PATCH"):
            return httpx.Response(201 if request.method == "POST" else 200, json=answer or body)
        if isinstance(answer, list):
            return httpx.Response(200, json={"kind": "List", "items": answer})
        if answer is not None:
            return httpx.Response(200, json=answer)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "not found"}})


def run(fake: FakeMcpd, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, obj=AppState(transport=httpx.MockTransport(fake)))


def test_create_prompt_posts_to_its_project() -> None:
    fake = FakeMcpd()
    result = run(
        fake, "create", "prompt", "triage", "-p", "monitoring", "--text", "Look first.",
        "--priority", "8", "--tag", "oncall", "--tag", "grafana",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "prompt/triage created\n"
    assert fake.requests == [
        (
            "POST",
            "/api/v1/projects/monitoring/prompts",
            {
                "kind": "Prompt",
                "metadata": {"name": "triage", "project": "monitoring"},
                "spec": {"text": "Look first.", "priority": 8, "tags": ["oncall", "grafana"]},
            },
        )
    ]


def test_create_prompt_reads_its_text_from_a_file_or_stdin(tmp_path: Path) -> None:
    text = "# Runbook\n\nCheck the alerts.\n"
    (tmp_path / "runbook.md").write_text(text, encoding="utf-8")
    fake = FakeMcpd()
    assert (
        run(fake, "create", "prompt", "a", "-p", "p", "--text-file", str(tmp_path / "runbook.md")).exit_code
        == 0
    )
    assert run(fake, "create", "prompt", "b", "-p", "p", "--text-file", "-", stdin=text).exit_code == 0
    assert [r[2]["spec"] for r in fake.requests] == [{"text": text}, {"text": text}]


def test_create_proxymodel_sends_typed_stage_configs() -> None:
    fake = FakeMcpd()
    result = run(
        fake, "create", "proxymodel", "lean", "--stage", "gate:tools=5,promptBytes=2048",
        "--stage", "paginate:pageBytes=8192", "--stage", "summarize",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "proxymodel/lean created\n"
    assert fake.requests[0][:2] == ("POST", "/api/v1/proxymodels")
    assert fake.requests[0][2]["spec"] == {
        "stages": [
            {"type": "gate", "config": {"tools": 5, "promptBytes": 2048}},
            {"type": "paginate", "config": {"pageBytes": 8192}},
            {"type": "summarize", "config": {}},
        ]
    }


def test_get_prompts_lists_one_project_or_all() -> None:
    fake = FakeMcpd(
        {
            ("GET", "/api/v1/projects/monitoring/prompts"): [prompt_object()],
            ("GET", "/api/v1/prompts"): [prompt_object(), prompt_object("hello", "other")],
        }
    )
    result = run(fake, "get", "prompts", "-p", "monitoring")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "PROJECT", "PRIORITY", "TAGS", "BYTES", "AGE"]
    assert row.split()[:5] == ["triage", "monitoring", "8", "oncall,grafana", "29"]
    everywhere = run(fake, "get", "prompts", "-l", "team=obs")
    assert [line.split()[:2] for line in everywhere.stdout.splitlines()[1:]] == [
        ["triage", "monitoring"],
        ["hello", "other"],
    ]
    assert [r[1] for r in fake.requests] == [
        "/api/v1/projects/monitoring/prompts",
        "/api/v1/prompts?labelSelector=team%3Dobs",
    ]


def test_prompt_by_name_is_addressed_within_its_project() -> None:
    fake = FakeMcpd({("GET", "/api/v1/projects/monitoring/prompts/triage"): prompt_object()})
    assert run(fake, "get", "prompt", "triage", "-p", "monitoring", "-o", "name").stdout == "prompt/triage\n"
    described = run(fake, "describe", "prompt", "triage", "-p", "monitoring")
    assert described.exit_code == 0, described.output
    assert "Project:" in described.stdout and "Look at the dashboards first." in described.stdout
    assert run(fake, "patch", "prompt", "triage", "-p", "monitoring", "priority=9").exit_code == 0
    deleted = run(fake, "delete", "prompt", "triage", "-p", "monitoring")
    assert deleted.stdout == "prompt/triage deleted\n"
    path = "/api/v1/projects/monitoring/prompts/triage"
    assert [(m, p) for m, p, _ in fake.requests] == [
        ("GET", path),
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
    ]
    assert fake.requests[2][2] == {"spec": {"priority": 9}}


def test_get_proxymodels_says_which_are_built_in() -> None:
    fake = FakeMcpd({("GET", "/api/v1/proxymodels"): [GATE, LEAN]})
    result = run(fake, "get", "proxymodels")
    assert result.exit_code == 0, result.output
    header, gate, lean = (line.split() for line in result.stdout.splitlines())
    assert header == ["NAME", "STAGES", "BUILT-IN", "AGE"]
    assert gate == ["gate", "gate", "true", "-"]
    assert lean[:3] == ["lean", "gate,paginate", "false"]


@pytest.mark.parametrize(
    ("answers", "noun", "args", "path"),
    [
        (
            {("GET", "/api/v1/projects/monitoring/prompts/triage"): prompt_object()},
            "prompt",
            ["triage", "-p", "monitoring"],
            "/api/v1/projects/monitoring/prompts/triage",
        ),
        ({("GET", "/api/v1/proxymodels/lean"): LEAN}, "proxymodel", ["lean"], "/api/v1/proxymodels/lean"),
        ({("GET", "/api/v1/proxymodels/gate"): GATE}, "proxymodel", ["gate"], "/api/v1/proxymodels/gate"),
    ],
)
def test_get_yaml_applies_back_to_the_same_object(
    answers: dict[tuple[str, str], Any], noun: str, args: list[str], path: str
) -> None:
    fake = FakeMcpd(answers)
    got = run(fake, "get", noun, *args, "-o", "yaml")
    assert got.exit_code == 0, got.output
    applied = run(fake, "apply", "-f", "-", stdin=got.stdout)
    assert applied.exit_code == 0, applied.output
    assert applied.stdout == f"{noun}/{args[0]} unchanged\n"
    method, put_path, body = fake.requests[-1]
    assert (method, put_path) == ("PUT", path)
    assert body == answers[("GET", path)]


def test_completion_offers_the_new_nouns() -> None:
    ctx = click.Context(cli)
    offered = [item.value for item in complete_noun(ctx, click.Argument(["noun"]), "pr")]
    assert offered == ["projects", "prompts", "proxymodels"]
