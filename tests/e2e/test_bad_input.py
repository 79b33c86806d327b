"""Bad input through the CLI: one error line, the documented exit code, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, error_lines

pytestmark = pytest.mark.e2e


def _names(admin: Cli, noun: str) -> list[str]:
    return [item["metadata"]["name"] for item in admin.json("get", noun)["items"]]


def test_apply_of_a_project_naming_a_missing_server_is_a_bad_request_and_creates_nothing(
    admin: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "project.yaml"
    path.write_text("kind: Project\nmetadata: {name: bi-orphan}\nspec: {servers: [bi-no-such-server]}\n")

    result = admin("apply", "-f", str(path))

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("Error from server (BadRequest): ")
    assert "bi-orphan" not in _names(admin, "projects")


def test_create_server_with_an_invalid_name_fails_and_creates_nothing(admin: Cli) -> None:
    result = admin(
        "create", "server", "Bad_Name", "--transport", "http", "--url", "https://x.example.com/mcp"
    )

    assert result.returncode in (1, 2)
    [line, *_] = error_lines(result.stderr)
    assert line.startswith(("error: ", "Error from server (BadRequest): "))
    assert result.stdout == ""
    assert not [name for name in _names(admin, "servers") if name.lower().replace("_", "-") == "bad-name"]


def test_apply_of_malformed_yaml_is_an_error_and_sends_nothing(admin: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "kind: Server\nmetadata: {name: bi-ok}\nspec: {transport: http, url: 'https://ok.example.com/mcp'}\n"
        "---\nkind: Server\nmetadata: {name: [bi-broken\n  spec: : :\n"
    )

    result = admin("apply", "-f", str(path))

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("error: ")
    assert "bi-ok" not in _names(admin, "servers")  # every document is checked before any is sent


@pytest.mark.parametrize("verb", ["get", "describe", "delete"])
def test_an_unknown_noun_is_a_usage_error(admin: Cli, verb: str) -> None:
    result = admin(verb, "widgets", "w")

    assert result.returncode == 2
    assert error_lines(result.stderr)[0].startswith("error: ")
