"""`mcpctl tools` and `mcpctl call` as the real CLI against a real mcpd (SQLite) whose project runs the
fixture server and mcp-server-time: listing, calling with coerced arguments, errors and exit codes,
the reach of the login's token, `--token`, both eras, and `mcplocal serve` through `--url`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.test_mcplocal_split import mcplocal_serve
from tests.e2e.upstreams import FIXTURE, PYTHON, TIME_SERVER, wait_running
from tests.processes import free_port

pytestmark = pytest.mark.e2e
PASSWORD = "tools-call-password-1"
CREATED = "created for mcpctl tools/call (project tc,"


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "time", *TIME_SERVER)
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "tc", "--server", "time", "--server", "fx")
    email = "nobody@example.com"
    op.ok("create", "user", "nobody", "--email", email, "--password-stdin", input=PASSWORD + "\n")
    grants = ("role:view,resource:projects", "role:create,resource:mcptokens")
    op.ok(
        "create",
        "rbac",
        "nobody-rbac",
        "--subject",
        f"User:{email}",
        *[f"--roleBindings={b}" for b in grants],
    )
    wait_running(op, "time", 1)
    wait_running(op, "fx", 1)
    return op


@pytest.fixture(scope="module")
def serve(daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mcplocal_serve(daemon, tmp_path_factory.mktemp("serve")) as base:
        yield base


def token_ids(op: Cli) -> list[str]:
    return sorted(item["metadata"]["id"] for item in op.json("get", "mcptokens", "-p", "tc")["items"])


def test_tools_lists_the_prefixed_names_and_reuses_its_token(op: Cli, make_cli: Callable[[], Cli]) -> None:
    cli = login_admin(make_cli())
    first = cli.ok("tools", "-p", "tc")
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION"]
    names = [line.split()[0] for line in lines[1:]]
    assert "time__get_current_time" in names and "fx__echo" in names
    assert names.index("time__get_current_time") < names.index("fx__echo")  # the project's order
    assert CREATED in first.stderr and "mcptoken/mcpctl-cli-" in first.stderr
    tokens = token_ids(op)

    wide = cli.ok("tools", "-p", "tc", "-o", "wide")
    assert wide.stderr == ""  # the kept token still works: nothing minted, nothing said
    assert token_ids(op) == tokens
    rows = wide.stdout.splitlines()
    assert rows[0].split() == ["NAME", "DESCRIPTION", "PARAMETERS"]
    assert [row.split()[0] for row in rows[1:]] == names
    add = next(row for row in rows if row.startswith("fx__add "))
    assert add.endswith("a*, b*")
    listed = json.loads(cli.ok("tools", "-p", "tc", "-o", "json").stdout)["tools"]
    echo = next(tool for tool in listed if tool["name"] == "fx__echo")
    assert echo["inputSchema"]["properties"]["text"]["type"] == "string"


def test_call_prints_the_text_with_arguments_coerced_by_the_schema(op: Cli) -> None:
    assert op.ok("call", "-p", "tc", "fx__echo", "text=42", "--era", "legacy").stdout == "42\n"  # a string
    assert op.ok("call", "-p", "tc", "fx__add", "a=2", "b=3", "--era", "legacy").stdout == "5\n"


def test_call_with_json_arguments_in_the_2026_era(op: Cli) -> None:
    era = ("--era", "2026-07-28")
    merged = op.ok("call", "-p", "tc", "fx__add", "--json", '{"a": 1, "b": 2}', "b=10", *era)
    assert merged.stdout == "11\n"  # key=value wins over --json
    now = op.ok(
        "call", "-p", "tc", "time__get_current_time", "--json", '{"timezone": "UTC"}', "-o", "json", *era
    )
    result = json.loads(now.stdout)
    assert result["isError"] is False and "UTC" in result["content"][0]["text"]


def test_bad_arguments_are_usage_errors_naming_the_key(op: Cli) -> None:
    for args, key in ((["a=two", "b=1"], "a"), (["a=1", "b=1", "c=1"], "c"), (["a=1"], "b")):
        result = op("call", "-p", "tc", "fx__add", *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: {key}: "), result.stderr


def test_an_error_result_goes_to_stderr_with_exit_1(op: Cli) -> None:
    result = op("call", "-p", "tc", "fx__fail", "message=it broke")
    assert result.returncode == 1 and result.stdout == ""
    assert "it broke" in result.stderr


def test_an_unknown_tool_is_an_error_naming_it(op: Cli) -> None:
    result = op("call", "-p", "tc", "nope__echo")
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]  # after the token's note when this test runs first
    assert error.startswith("error: ") and "nope__echo" in error
    assert "mcpctl tools -p tc" in error


def test_a_user_who_may_run_nothing_sees_no_tools(op: Cli, make_cli: Callable[[], Cli]) -> None:
    nobody = make_cli()
    nobody.login("nobody@example.com", PASSWORD)
    result = nobody.ok("tools", "-p", "tc")
    assert result.stdout == "" and "No tools found" in result.stderr
    assert "-nobody created for mcpctl tools/call" in result.stderr  # a token of its own, per user
    refused = nobody("call", "-p", "tc", "fx__echo", "text=hi")
    assert refused.returncode == 1 and "fx__echo" in refused.stderr


def test_a_given_token_is_used_as_it_is(op: Cli, make_cli: Callable[[], Cli]) -> None:
    token = op.json(
        "create", "mcptoken", "time-only", "-p", "tc", "--bind", "role:run,resource:servers,name:time"
    )["token"]
    stranger = make_cli()  # not logged in: the token is all it has
    names = stranger.ok("tools", "-p", "tc", "--token", token, "-o", "name").stdout.split()
    assert names and all(name.startswith("time__") for name in names)
    from_env = stranger.with_token(token).ok("tools", "-p", "tc", "-o", "name").stdout.split()
    assert from_env == names
    op.ok("revoke", "mcptoken", "time-only", "-p", "tc")
    revoked = stranger("tools", "-p", "tc", "--token", token)
    assert revoked.returncode == 1
    assert revoked.stderr.startswith("Error from server (Unauthorized): token refused"), revoked.stderr
    assert "revoked" in revoked.stderr


def test_through_mcplocal_serve_with_url(op: Cli, serve: str) -> None:
    names = op.ok("tools", "-p", "tc", "--url", serve, "-o", "name").stdout.split()
    assert "fx__echo" in names
    full = f"{serve}/projects/tc/mcp"
    assert op.ok("call", "-p", "tc", "fx__echo", "text=via serve", "--url", full).stdout == "via serve\n"


def test_unreachable_and_timeout_exit_1(op: Cli, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = op("tools", "-p", "tc", "--url", nowhere)
    assert result.returncode == 1 and result.stderr.startswith("error: cannot reach"), result.stderr
    slow = op("call", "-p", "tc", "fx__sleep", "seconds=10", "--timeout", "1")
    assert slow.returncode == 1 and "within 1 s" in slow.stderr, slow.stderr
