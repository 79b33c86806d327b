"""`apply -f`'s loader: multi-document YAML, JSON, Lists; bad documents stop everything up front."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli
from mcpctl.cli.manifests import ManifestError, load_manifests

MULTI = """\
kind: Secret
metadata: {name: grafana}
spec: {data: {TOKEN: glsa}}
---
---
kind: server
metadata: {name: grafana, labels: {team: obs}}
spec: {transport: stdio, command: uvx, env: {A: yes, B: 2026-01-01}}
"""


def test_multi_document_yaml_keeps_order_and_skips_empty_documents() -> None:
    manifests = load_manifests(MULTI, "f.yaml")
    assert [(m.info.kind, m.name) for m in manifests] == [("Secret", "grafana"), ("Server", "grafana")]
    assert manifests[1].body["spec"]["env"] == {"A": "yes", "B": "2026-01-01"}


def test_a_list_is_expanded_into_its_items() -> None:
    text = (
        "kind: List\nitems:\n- {kind: Group, metadata: {name: devs}, spec: {members: []}}\n"
        "- {kind: Project, metadata: {name: p}, spec: {}}\n"
    )
    assert [m.info.plural for m in load_manifests(text, "-")] == ["groups", "projects"]


def test_json_is_accepted() -> None:
    text = '{"kind": "List", "items": [{"kind": "User", "metadata": {"name": "bob"}, "spec": {}}]}'
    assert [m.name for m in load_manifests(text, "x.json")] == ["bob"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("metadata: {name: x}\n", "missing kind"),
        ("kind: Gizmo\nmetadata: {name: x}\n", "unknown kind"),
        ("kind: Server\nmetadata: {}\n", "missing metadata.name"),
        ("kind: Server\nspec: {}\n", "missing metadata.name"),
        ("kind: Prompt\nmetadata: {name: t}\nspec: {text: hi}\n", "a Prompt needs metadata.project"),
        ("kind: McpToken\nmetadata: {name: t}\n", "needs metadata.project"),
        ("kind: McpToken\nmetadata: {name: t, project: p}\nspec: {ttl: 30d, colour: red}\n", "'colour'"),
        ("kind: McpToken\nmetadata: {name: t, project: p}\nspec: {rbac: all}\n", "spec.rbac"),
        (
            "kind: McpToken\nmetadata: {name: t, project: p}\n"
            "spec: {bindings: [{role: frob, resource: servers}]}\n",
            "'frob'",
        ),
        ("kind: AuditEvent\nmetadata: {name: '1'}\n", "read-only"),
        ("kind: List\nitems: nope\n", "needs 'items'"),
    ],
)
def test_bad_documents_are_errors_naming_the_document(text: str, needle: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifests("kind: Group\nmetadata: {name: ok}\n---\n" + text, "bad.yaml")
    assert needle in info.value.message
    assert info.value.message.startswith("bad.yaml")


def _no_requests(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing may be sent, got {request.method} {request.url}")


def test_apply_sends_nothing_when_any_document_is_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: Group\nmetadata: {name: ok}\n---\nkind: Server\nmetadata: {}\n")
    result = CliRunner().invoke(
        cli, ["apply", "-f", str(manifest)], obj=AppState(transport=httpx.MockTransport(_no_requests))
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "document 2" in result.stderr


def test_apply_puts_each_object_and_reports_the_server_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        assert request.headers["Authorization"] == "Bearer session-token"
        result = "created" if "secrets" in request.url.path else "unchanged"
        return httpx.Response(201 if result == "created" else 200, json={}, headers={"Mcpctl-Result": result})

    result = CliRunner().invoke(
        cli,
        ["apply", "-f", "-", "--dry-run"],
        input=MULTI,
        obj=AppState(transport=httpx.MockTransport(handler)),
    )
    assert result.exit_code == 0, result.output
    assert seen == ["PUT /api/v1/secrets/grafana?dryRun=true", "PUT /api/v1/servers/grafana?dryRun=true"]
    assert result.stdout.splitlines() == [
        "secret/grafana created (dry run)",
        "server/grafana unchanged (dry run)",
    ]


def _laughs(levels: int) -> str:
    """The "billion laughs": each level an anchored list of nine aliases of the one before."""
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    lines.append(f"kind: Secret\nmetadata: {{name: bomb}}\nspec: {{data: {{a: *l{levels}}}}}")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb": _laughs(7),  # 9**7 values once expanded
    "alias bomb, more aliases": _laughs(9) + "".join(f"x{i}: *l0\n" for i in range(1200)),
    "deep YAML": "kind: Secret\nmetadata: {name: deep}\nspec: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep block YAML": "kind: Secret\nmetadata: {name: deep}\nspec:\n"
    + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(300)),
    "deep JSON": '{"kind": "Secret", "metadata": {"name": "deep"}, "spec": ' + "[" * 5000 + "]" * 5000 + "}",
    "self-referencing alias": "kind: Secret\nmetadata: {name: loop}\nspec: &s {data: *s}\n",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_yaml_is_refused_before_it_is_built(text: str) -> None:
    with pytest.raises(ManifestError):
        load_manifests(text, "f.yaml")


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_apply_of_hostile_yaml_is_one_error_line_and_exit_1(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", "session-token")
    result = CliRunner().invoke(
        cli, ["apply", "-f", "-"], input=text, obj=AppState(transport=httpx.MockTransport(_no_requests))
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_anchors_and_aliases_within_bounds_still_work() -> None:
    text = "kind: Secret\nmetadata: {name: ok, labels: &l {team: obs}}\nspec: {data: *l}\n"
    [manifest] = load_manifests(text, "f.yaml")
    assert manifest.body["spec"]["data"] == {"team": "obs"}
