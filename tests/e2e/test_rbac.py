"""A user bound only to `role:view,resource:projects` can list projects and nothing more; what it may
not see answers NotFound rather than Forbidden."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli, error_lines

pytestmark = pytest.mark.e2e

EMAIL = "viewer@example.com"
PASSWORD = "viewer-pass-1"


@pytest.fixture(scope="module")
def viewer_objects(admin: Cli) -> None:
    admin.ok("create", "server", "rb-time", "--transport", "http", "--url", "https://time.example.com/mcp")
    admin.ok("create", "project", "rb-proj", "--server", "rb-time")
    admin.ok("create", "user", "viewer", "--email", EMAIL, "--password-stdin", input=PASSWORD + "\n")
    admin.ok(
        "create",
        "rbac",
        "viewer-projects",
        "--subject",
        f"User:{EMAIL}",
        "--roleBindings",
        "role:view,resource:projects",
    )


@pytest.fixture
def viewer(viewer_objects: None, cli: Cli) -> Cli:
    cli.login(EMAIL, PASSWORD)
    return cli


def test_a_project_viewer_lists_the_projects(viewer: Cli) -> None:
    result = viewer("get", "projects")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[0] == "NAME"
    assert "rb-proj" in [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_a_project_viewer_may_not_create_a_project(viewer: Cli, admin: Cli) -> None:
    result = viewer("create", "project", "rb-x")

    assert result.returncode == 1
    assert result.stderr.startswith("Error from server (Forbidden)")
    assert admin("get", "project", "rb-x").stderr.startswith("Error from server (NotFound)")


def test_a_server_the_viewer_may_not_see_is_not_found_rather_than_forbidden(viewer: Cli) -> None:
    existing = viewer("get", "server", "rb-time")
    missing = viewer("get", "server", "rb-no-such-server")

    assert existing.returncode == 1
    [line] = error_lines(existing.stderr)
    assert line.startswith("Error from server (NotFound)")
    # the answer for an existing server tells nothing a missing one would not
    assert missing.returncode == 1
    assert line == error_lines(missing.stderr)[0].replace("rb-no-such-server", "rb-time")
