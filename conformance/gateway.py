"""The gateway side: the embedded all-in-one mcpd on a fresh data dir, set up through the real CLI with
the fixture registered twice, each alone in a project with `toolPrefixMode: never` and `proxyModel:
direct`, and an McpToken per project:

- `conformance-http`: the fixture as a `transport: http` server (a fixture process of its own, over
  Streamable HTTP, `--conformance`). A 2026-07-28 caller's request reaches it as such (envelope,
  `input_required` answers: mcpd's 2026 pass-through); 2025-11-25 callers go down mcpd's shared
  2025-11-25 connection to it;
- `conformance-stdio`: the fixture as a `transport: stdio` server that mcpd runs (the default
  deployment): every caller, of either era, goes down mcpd's 2025-11-25 connection to the process.

Yields mcpd's URL and the token of each project; the projects' endpoints are
`<mcpd>/projects/<project>/mcp`, and the same paths on `mcplocal serve`."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from tests.processes import clean_env, free_port

from conformance.processes import BIN, fixture_stdio_command, started
from conformance.suites import SetupError

MCPD = BIN / "mcpd"
MCPCTL = BIN / "mcpctl"
HTTP, STDIO = "http", "stdio"
PROJECTS = {HTTP: "conformance-http", STDIO: "conformance-stdio"}  # upstream transport → project
TOKEN_LINE = re.compile(r"^mcptoken/(?P<name>\S+) created\n(?P<token>mcpctl_pat_\S+)$", re.MULTILINE)
CLI_TIMEOUT = 30.0
RUNNING_TIMEOUT = 60.0
POLL_INTERVAL = 0.5
# Quick probes and reconciliation, as the e2e tests use, so the instance is healthy within seconds.
MCPD_ENV = {
    "MCPD_PROBE_INTERVAL_SECONDS": "1",
    "MCPD_RECONCILE_INTERVAL_SECONDS": "2",
    "MCPD_STOP_GRACE_SECONDS": "2",
}


@dataclass(frozen=True)
class Cli:
    """The real `mcpctl` with its own config file, against one mcpd."""

    mcpd_url: str
    config: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = CLI_TIMEOUT) -> str:
        env = {**clean_env(), "MCPCTL_CONFIG": str(self.config), "MCPCTL_MCPD_URL": self.mcpd_url}
        result = subprocess.run(
            [str(MCPCTL), *args],
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise SetupError(
                f"mcpctl {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@dataclass(frozen=True)
class Gateway:
    mcpd_url: str
    tokens: dict[str, str]  # project → its McpToken (named like the project)
    cli: Cli

    @staticmethod
    def path(transport: str) -> str:
        """The MCP endpoint's path of the project whose server is the fixture over `transport`."""
        return f"/projects/{PROJECTS[transport]}/mcp"

    def wait_running(self) -> None:
        """Until every project's server has a running, healthy instance (at most RUNNING_TIMEOUT)."""
        for server in PROJECTS.values():
            _wait_running(self.cli, server)


def manifest(upstream_url: str) -> str:
    """Each project (see the module docstring) with its server and an McpToken, both named like the
    project."""
    command, *args = fixture_stdio_command()
    specs: dict[str, dict[str, Any]] = {
        HTTP: {"transport": "http", "url": upstream_url},
        STDIO: {"transport": "stdio", "command": command, "args": args},
    }
    documents: list[dict[str, Any]] = []
    for transport, project in PROJECTS.items():
        documents.append({"kind": "Server", "metadata": {"name": project}, "spec": specs[transport]})
        documents.append(
            {
                "kind": "Project",
                "metadata": {"name": project},
                "spec": {"servers": [project], "proxyModel": "direct", "toolPrefixMode": "never"},
            }
        )
        documents.append({"kind": "McpToken", "metadata": {"name": project, "project": project}})
    return yaml.safe_dump_all(documents, sort_keys=False)


@contextmanager
def running_gateway(work: Path, upstream_url: str) -> Iterator[Gateway]:
    """mcpd with both conformance projects and their tokens applied. Their instances may still be
    starting (and the http upstream need not listen yet): `Gateway.wait_running()` waits for them."""
    data_dir = work / "mcpd-data"
    port = free_port()
    env = {**clean_env(), **MCPD_ENV, "MCPD_DATA_DIR": str(data_dir)}
    command = [str(MCPD), "--host", "127.0.0.1", "--port", str(port)]
    with started("mcpd", command, port, work / "mcpd.log", env, f"http://127.0.0.1:{port}") as mcpd:
        mcpd_url = mcpd.listening()
        _wait_ready(mcpd_url)
        cli = Cli(mcpd_url, work / "mcpctl" / "config.yaml")
        credentials = yaml.safe_load((data_dir / "admin-credentials").read_text())
        cli(
            "login", "--email", credentials["email"], "--password-stdin", input=credentials["password"] + "\n"
        )
        manifest_path = work / "conformance.yaml"
        manifest_path.write_text(manifest(upstream_url))
        applied = cli("apply", "-f", str(manifest_path))
        tokens = {m["name"]: m["token"] for m in TOKEN_LINE.finditer(applied)}
        if set(tokens) != set(PROJECTS.values()):
            raise SetupError(f"mcpctl apply did not print a token for each project: {sorted(tokens)}")
        yield Gateway(mcpd_url=mcpd_url, tokens=tokens, cli=cli)


def _wait_ready(mcpd_url: str) -> None:
    deadline = time.monotonic() + RUNNING_TIMEOUT
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{mcpd_url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_INTERVAL)
    raise SetupError(f"mcpd at {mcpd_url} was not ready within {RUNNING_TIMEOUT}s")


def _wait_running(cli: Cli, server: str) -> None:
    deadline = time.monotonic() + RUNNING_TIMEOUT
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = cli.json("get", "instances", "--server", server)["items"]
        if any(
            i["status"]["status"] == "RUNNING" and i["status"]["healthStatus"] == "healthy" for i in items
        ):
            return
        time.sleep(POLL_INTERVAL)
    statuses = [(i["status"]["status"], i["status"]["healthStatus"]) for i in items]
    raise SetupError(f"{server} has no running, healthy instance after {RUNNING_TIMEOUT}s: {statuses}")
