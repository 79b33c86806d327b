"""Servers through the CLI: deleting one in use, output formats, selectors and patches."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Cli, error_lines

pytestmark = pytest.mark.e2e


def _http_server(admin: Cli, name: str, *flags: str) -> None:
    admin.ok(
        "create", "server", name, "--transport", "http", "--url", f"https://{name}.example.com/mcp", *flags
    )


def test_deleting_a_server_in_use_is_a_conflict(admin: Cli) -> None:
    _http_server(admin, "sv-used")
    admin.ok("create", "project", "sv-user-proj", "--server", "sv-used")

    result = admin("delete", "server", "sv-used")

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("Error from server (Conflict)")
    assert admin.json("get", "server", "sv-used")["status"]["projects"] == ["sv-user-proj"]


def test_force_deleting_a_server_in_use_detaches_it_from_its_projects(admin: Cli) -> None:
    _http_server(admin, "sv-forced")
    _http_server(admin, "sv-kept")
    admin.ok("create", "project", "sv-forced-proj", "--server", "sv-forced", "--server", "sv-kept")

    result = admin("delete", "server", "sv-forced", "--force")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["server/sv-forced deleted"]
    assert admin("get", "server", "sv-forced").stderr.startswith("Error from server (NotFound)")
    assert admin.json("get", "project", "sv-forced-proj")["spec"]["servers"] == ["sv-kept"]


@pytest.fixture(scope="module")
def labelled_servers(admin: Cli) -> None:
    _http_server(admin, "sv-obs", "--label", "team=obs")
    _http_server(admin, "sv-web", "--label", "team=web")
    admin.ok(
        "create",
        "server",
        "sv-stdio",
        "--transport",
        "stdio",
        "--command",
        "uvx",
        "--arg",
        "mcp-time",
        "--label",
        "team=obs",
    )


@pytest.mark.usefixtures("labelled_servers")
def test_get_servers_as_json_is_a_list_of_full_objects(admin: Cli) -> None:
    body = json.loads(admin.ok("get", "servers", "-o", "json").stdout)

    assert body["kind"] == "List"
    assert {"sv-obs", "sv-web", "sv-stdio"} <= {item["metadata"]["name"] for item in body["items"]}
    for item in body["items"]:
        assert item["kind"] == "Server"
        assert {"kind", "metadata", "spec", "status"} <= set(item)


@pytest.mark.usefixtures("labelled_servers")
def test_get_servers_as_names_prints_one_kind_slash_name_line_each(admin: Cli) -> None:
    lines = admin.ok("get", "servers", "-o", "name").stdout.splitlines()

    assert {"server/sv-obs", "server/sv-web", "server/sv-stdio"} <= set(lines)
    assert all(line.startswith("server/") and len(line.split()) == 1 for line in lines)


@pytest.mark.usefixtures("labelled_servers")
def test_get_servers_prints_a_table_whose_first_column_is_name(admin: Cli) -> None:
    header, *rows = admin.ok("get", "servers").stdout.splitlines()

    assert header.split()[0] == "NAME"
    assert {"sv-obs", "sv-web", "sv-stdio"} <= {row.split()[0] for row in rows}


@pytest.mark.usefixtures("labelled_servers")
def test_a_label_selector_keeps_only_the_matching_servers(admin: Cli) -> None:
    names = admin.ok("get", "servers", "-l", "team=obs", "-o", "name").stdout.splitlines()
    body = json.loads(admin.ok("get", "servers", "-l", "team=obs", "-o", "json").stdout)

    assert {"server/sv-obs", "server/sv-stdio"} <= set(names)
    assert "server/sv-web" not in names
    assert all(item["metadata"]["labels"]["team"] == "obs" for item in body["items"])


def test_patching_replicas_changes_the_stored_server(admin: Cli) -> None:
    admin.ok(
        "create", "server", "sv-patched", "--transport", "stdio", "--command", "uvx", "--arg", "mcp-time"
    )

    result = admin("patch", "server", "sv-patched", "replicas=3")

    assert result.returncode == 0, result.stderr
    server = admin.json("get", "server", "sv-patched")
    assert server["spec"]["replicas"] == 3
    assert server["spec"]["command"] == "uvx" and server["spec"]["args"] == ["mcp-time"]
