"""Token reach through the real project endpoint, embedded and split (DESIGN §4): a token never
calls a tool of a server its owner may not run, whatever `--rbac` it was minted with, and an edit or
deletion of its RbacDefinition never widens it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.test_mcplocal_split import mcplocal_serve
from tests.e2e.test_project_endpoint import client, mint
from tests.e2e.upstreams import FIXTURE, PYTHON, TIME_SERVER, run, wait_running

pytestmark = pytest.mark.e2e
PASSWORD = "reach-password-1"


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "time", *TIME_SERVER)
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "pa", "--server", "time", "--server", "fx")
    for user, *bindings in (
        ("nobody", "role:view,resource:projects", "role:create,resource:mcptokens"),
        (
            "timer",
            "role:view,resource:projects",
            "role:create,resource:mcptokens",
            "role:run,resource:servers,name:time",
        ),
    ):
        email = f"{user}@example.com"
        op.ok("create", "user", user, "--email", email, "--password-stdin", input=PASSWORD + "\n")
        flags = [arg for b in bindings for arg in ("--roleBindings", b)]
        op.ok("create", "rbac", f"{user}-rbac", "--subject", f"User:{email}", *flags)
    wait_running(op, "time", 1)
    wait_running(op, "fx", 1)
    return op


def user_cli(make_cli: Callable[[], Cli], user: str) -> Cli:
    cli = make_cli()
    cli.login(f"{user}@example.com", PASSWORD)
    return cli


@contextmanager
def project_url(mode: str, daemon: Mcpd, tmp_path: Path) -> Iterator[str]:
    if mode == "embedded":
        yield f"{daemon.url}/projects/pa/mcp"
        return
    with mcplocal_serve(daemon, tmp_path) as base:
        yield f"{base}/projects/pa/mcp"


@asynccontextmanager
async def _session(url: str, token: str) -> AsyncIterator[Any]:
    async with client(url, token) as session:
        yield session


def surface(url: str, token: str) -> tuple[list[str], bool, bool]:
    """(tools listed, whether time's tool call succeeded, whether fx's did)."""

    async def scenario() -> tuple[list[str], bool, bool]:
        async with _session(url, token) as session:
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            results = []
            for name, args in (("time__get_current_time", {"timezone": "UTC"}), ("fx__echo", {"text": "hi"})):
                try:
                    results.append(not (await session.call_tool(name, args)).is_error)
                except MCPError:
                    results.append(False)
            return tools, results[0], results[1]

    answer: tuple[list[str], bool, bool] = run(scenario)
    return answer


@pytest.mark.parametrize("mode", ["embedded", "split"])
def test_a_token_of_a_user_who_may_run_nothing_calls_nothing(
    op: Cli, make_cli: Callable[[], Cli], daemon: Mcpd, tmp_path: Path, mode: str
) -> None:
    nobody = user_cli(make_cli, "nobody")
    tokens = [mint(nobody, "pa", f"nobody-{rbac}-{mode}", "--rbac", rbac) for rbac in ("empty", "clone")]
    with project_url(mode, daemon, tmp_path) as url:
        for token in tokens:
            assert surface(url, token) == ([], False, False)


@pytest.mark.parametrize("mode", ["embedded", "split"])
def test_a_token_reaches_only_what_its_owner_may_run_even_after_its_definition_goes(
    op: Cli, make_cli: Callable[[], Cli], daemon: Mcpd, tmp_path: Path, mode: str
) -> None:
    timer = user_cli(make_cli, "timer")
    broad = mint(timer, "pa", f"timer-empty-{mode}")
    scoped = mint(op, "pa", f"admin-fx-{mode}", "--bind", "role:run,resource:servers,name:fx")
    op.ok("delete", "rbac", f"mcptoken-pa-admin-fx-{mode}")
    with project_url(mode, daemon, tmp_path) as url:
        tools, time_ok, fx_ok = surface(url, broad)
        assert tools and all(t.startswith("time__") for t in tools)
        assert (time_ok, fx_ok) == (True, False)
        tools, time_ok, fx_ok = surface(url, scoped)
        assert tools and all(t.startswith("fx__") for t in tools)
        assert (time_ok, fx_ok) == (False, True)
