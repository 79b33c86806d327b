"""Regenerate `bench/context_tools.json`: the real tools/list of each server of the context benchmark's
project (DESIGN §10, the gate's ranking), as the project endpoint exposes them (`<server>__<tool>`).

    .venv/bin/python -m bench.snapshot_tools [--out bench/context_tools.json]

Each server is started over stdio with the MCP SDK's client and asked for its tools (every page).
The project's servers, in project order: `time`, `git`, `fetch` (PyPI, in .venv/bin), `everything`,
`filesystem`, `memory` (npm, node_modules/.bin) and `fixture` (tests/fixtures/mcp_fixture_server.py).
A server whose command is not installed is reported on stderr and left out of the snapshot; the
snapshot records which servers it holds. A snapshot, not a test: the ranking test reads the file, so
it does not depend on what happens to be installed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcpctl.core.namespacing import legal_name

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NODE_BIN = ROOT / "node_modules" / ".bin"
FIXTURE = ROOT / "tests" / "fixtures" / "mcp_fixture_server.py"
OUT = ROOT / "bench" / "context_tools.json"
SEPARATOR = "__"
TIMEOUT = 60.0


def _servers(scratch: Path) -> list[tuple[str, Path, list[str], dict[str, str]]]:
    """(project name, command, args, extra env) per server, in project order."""
    repo = scratch / "repo"
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)  # mcp-server-git wants a repository
    return [
        ("time", BIN / "mcp-server-time", [], {}),
        ("git", BIN / "mcp-server-git", ["--repository", str(repo)], {}),
        ("fetch", BIN / "mcp-server-fetch", [], {}),
        ("everything", NODE_BIN / "mcp-server-everything", ["stdio"], {}),
        ("filesystem", NODE_BIN / "mcp-server-filesystem", [str(scratch)], {}),
        ("memory", NODE_BIN / "mcp-server-memory", [], {"MEMORY_FILE_PATH": str(scratch / "memory.jsonl")}),
        ("fixture", Path(sys.executable), [str(FIXTURE)], {}),
    ]


async def _tools(command: Path, args: Sequence[str], env: dict[str, str]) -> list[dict[str, Any]]:
    path = f"{BIN}:{NODE_BIN}:/usr/local/bin:/usr/bin:/bin"
    params = StdioServerParameters(command=str(command), args=list(args), env={"PATH": path, **env})
    tools: list[dict[str, Any]] = []
    with anyio.fail_after(TIMEOUT):
        async with Client(stdio_client(params, errlog=sys.stderr), mode="legacy") as client:
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
                tools += [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    return tools


async def snapshot() -> dict[str, Any]:
    """The exposed tools of every installed server, and which servers were left out."""
    exposed: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    missing: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, command, args, env in _servers(Path(scratch)):
            if not command.exists() and shutil.which(str(command)) is None:
                print(f"{name}: {command} is not installed; left out", file=sys.stderr)
                missing.append(name)
                continue
            tools = await _tools(command, args, env)
            counts[name] = len(tools)
            for tool in tools:
                exposed.append({**tool, "name": legal_name(f"{name}{SEPARATOR}{tool['name']}")})
    return {
        "generated_by": "bench/snapshot_tools.py",
        "separator": SEPARATOR,
        "servers": counts,
        "missing": missing,
        "tools": exposed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the snapshot")
    args = parser.parse_args(argv)
    data = anyio.run(snapshot)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(data['tools'])} tools from {data['servers']} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
