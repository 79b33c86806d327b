"""`mcpctl config claude --client X --write` on a fresh client machine (a fresh HOME, a fresh project
directory), then exactly what the written config says, started as the client would start it, with
the official SDK as the MCP client — against an mcpd on a random port (DESIGN §4 Provisioning).

Claude Desktop: the command, args and env of the entry, under `{"PATH": "/usr/bin:/bin", **env}` and
nothing else (the SDK's own inheritance of HOME, USER, … is switched off). HTTP clients: the url and
headers with `${VAR}` (Claude Code), `${env:VAR}` (Cursor) or `${input:id}` (VS Code) resolved the
way that client resolves them — the variable set by running the `export` line `config claude`
printed, the input answered with the token file's content. No file written may hold the raw token
but the 0600 token file itself.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client import stdio as sdk_stdio
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.upstreams import FIXTURE, PYTHON, run, wait_running

pytestmark = pytest.mark.e2e
PROJECT = "cfg-demo"
KEY = "mcpctl-cfg-demo"
TOKEN_VAR = "MCPCTL_TOKEN_CFG_DEMO"
MINIMAL_PATH = "/usr/bin:/bin"


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", PROJECT, "--server", "fx")
    wait_running(op, "fx", 1)
    return op


@dataclass
class Machine:
    """A client machine's user: a fresh HOME (this test's, so `mcpctl` and the project directory
    it runs in inherit it), the CLI logged in to mcpd with its config in the default place."""

    home: Path
    cwd: Path
    cli: Cli

    @property
    def daemon(self) -> Mcpd:
        assert isinstance(self.cli.daemon, Mcpd)
        return self.cli.daemon

    def configure(self, client: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli.ok("config", "claude", "-p", PROJECT, "--client", client, *extra)

    def token_file(self, client: str) -> Path:
        """The one token file, `tokens/<mcpd host-port>/<project>/<client>-<host>-<user>` by default."""
        [path] = (self.home / ".mcpctl" / "tokens" / f"127-0-0-1-{self.daemon.port}" / PROJECT).iterdir()
        assert path.name.startswith(f"{client}-")
        return path

    def written(self) -> list[Path]:
        """Every file under HOME and the project directory."""
        return [p for root in (self.home, self.cwd) for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def machine(op: Cli, daemon: Mcpd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    home, cwd = tmp_path / "home", tmp_path / "work" / "project"
    cwd.mkdir(parents=True)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)  # where `mcpctl` runs: the project of .mcp.json and .vscode/mcp.json
    machine = Machine(home, cwd, Cli(daemon, home / ".mcpctl" / "config.yaml"))
    login_admin(machine.cli)
    return machine


CONFIG_FILES = {
    "claude-desktop": ".config/Claude/claude_desktop_config.json",
    "cursor": ".cursor/mcp.json",
    "claude-code": ".mcp.json",
    "vscode": ".vscode/mcp.json",
}
SECTIONS = {"vscode": "servers"}


def config_file(machine: Machine, client: str) -> Path:
    base = machine.cwd if client in ("claude-code", "vscode") else machine.home
    return base / CONFIG_FILES[client]


def printed_export(machine: Machine, output: str) -> str:
    """The token, as the `export …` line `config claude` printed sets it (run by a real shell)."""
    line = next(line for line in output.splitlines() if "export " in line)
    command = line.split("export ", 1)[1]
    shell = subprocess.run(
        ["/bin/sh", "-c", f'export {command}; printf %s "${TOKEN_VAR}"'],
        env={"PATH": MINIMAL_PATH, "HOME": str(machine.home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return shell.stdout


_REFERENCE = {
    "claude-code": re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}"),  # ${VAR}, ${VAR:-default}
    "cursor": re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}"),
    "vscode": re.compile(r"\$\{input:([^}]+)\}"),
}


def resolve(client: str, text: str, values: dict[str, str]) -> str:
    """Substitute the client's references as that client does; an unknown one fails the test."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{client} would not resolve {match.group(0)}"
        return values[name]

    return _REFERENCE[client].sub(one, text)


async def list_and_call(session: Client) -> tuple[list[str], str]:
    tools = [tool.name for tool in (await session.list_tools()).tools]
    answer = await session.call_tool("fx__echo", {"text": "through the written config"})
    assert not answer.is_error
    return tools, answer.content[0].text  # type: ignore[union-attr]


def run_http_entry(url: str, headers: dict[str, str]) -> tuple[list[str], str]:
    async def scenario() -> tuple[list[str], str]:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as session,
        ):
            return await list_and_call(session)

    return run(scenario)


def run_desktop_entry(entry: dict[str, Any], cwd: Path) -> tuple[list[str], str]:
    env = {"PATH": MINIMAL_PATH, **entry["env"]}
    if os.environ.get("PYTHONPATH"):  # a checkout run: the code under test, not the installed copy
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=cwd)

    async def scenario() -> tuple[list[str], str]:
        async with Client(sdk_stdio.stdio_client(params, errlog=sys.stderr)) as session:
            return await list_and_call(session)

    return run(scenario)


def assert_no_raw_token_outside_the_token_file(machine: Machine, token_file: Path, *tokens: str) -> None:
    for path in machine.written():
        if path == token_file:
            continue
        text = path.read_text(errors="replace")
        for token in tokens:
            assert token not in text, f"{path} holds the raw token"


@pytest.mark.parametrize("client", ["claude-desktop", "claude-code", "vscode", "cursor"])
def test_the_written_config_lists_and_calls_a_tool_as_the_client_would_start_it(
    machine: Machine, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = machine.configure(client, "--write")
    path = config_file(machine, client)
    data = json.loads(path.read_text())
    entry = data[SECTIONS.get(client, "mcpServers")][KEY]
    token_file = machine.token_file(client)
    token = token_file.read_text().strip()
    if client == "claude-desktop":
        assert Path(entry["command"]).is_absolute() and Path(entry["command"]).exists()
        assert entry["env"]["MCPLOCAL_MCPD_URL"] == machine.daemon.url  # not the default :3000
        assert entry["env"]["MCPCTL_TOKEN_FILE"] == str(token_file)
        assert "restart Claude Desktop" in result.stdout
        monkeypatch.setattr(sdk_stdio, "get_default_environment", dict)  # inherit nothing else
        tools, echoed = run_desktop_entry(entry, machine.home)
    else:
        if client == "vscode":
            [declared] = [i for i in data["inputs"] if i["id"] == f"{KEY}-token"]
            assert declared["type"] == "promptString" and declared["password"] is True
            assert f"paste the contents of {token_file}" in result.stdout.replace("\n      ", " ")
            values = {declared["id"]: token}  # what the user pastes when VS Code asks
        else:
            values = {TOKEN_VAR: printed_export(machine, result.stdout)}
            assert values[TOKEN_VAR] == token
        url = resolve(client, entry["url"], values)
        headers = {name: resolve(client, value, values) for name, value in entry["headers"].items()}
        assert url == f"{machine.daemon.url}/projects/{PROJECT}/mcp"
        tools, echoed = run_http_entry(url, headers)
    assert "fx__echo" in tools and echoed == "through the written config"
    # the modes: the token private; user-wide files private; committed files readable, no secret
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == (0o644 if client in ("claude-code", "vscode") else 0o600)
    assert_no_raw_token_outside_the_token_file(machine, token_file, token)


def test_rerunning_reuses_the_token_and_force_rotates_it_refusing_the_old_one(machine: Machine) -> None:
    printed = machine.configure("claude-code")  # without --write: the snippet, and the token file
    token_file = machine.token_file("claude-code")
    first = token_file.read_text().strip()
    assert "${" + TOKEN_VAR + "}" in printed.stdout and first not in printed.stdout + printed.stderr
    written = machine.configure("claude-code", "--write")
    assert "reused" in written.stdout and "wrote mcpctl-cfg-demo" in written.stdout
    again = machine.configure("claude-code", "--write")
    assert "reused" in again.stdout and "unchanged" in again.stdout
    assert token_file.read_text().strip() == first
    rotated = machine.configure("claude-code", "--write", "--force")
    second = token_file.read_text().strip()
    assert "rotated" in rotated.stdout and second != first
    url = f"{machine.daemon.url}/projects/{PROJECT}/mcp"
    refused = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {first}", "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert refused.status_code == 401
    tools, _ = run_http_entry(url, {"Authorization": f"Bearer {second}"})
    assert "fx__echo" in tools
    assert_no_raw_token_outside_the_token_file(machine, token_file, first, second)
