"""The gateway side: the embedded all-in-one mcpd on a fresh data dir, set up through the real CLI with
one project that holds only the fixture server with `toolPrefixMode: never`, and an McpToken for it.
Yields the project's MCP endpoint and the token.

The fixture is registered as a `transport: http` server (a fixture process of its own, over
Streamable HTTP, `--conformance`): only an HTTP upstream can take a 2026-07-28 caller's request as
such (a stdio process is locked to the era of its first request, and mcpd speaks 2025-11-25 to it),
and the 2026-07-28 scenarios need the upstream to see the caller's envelope and answer
`input_required`. 2025-11-25 scenarios go down mcpd's shared 2025-11-25 connection to the same
server."""

from __future__ import annotations

import json
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

from conformance.processes import PYTHON, background
from conformance.suites import SetupError

BIN = Path(PYTHON).parent
MCPD = BIN / "mcpd"
MCPCTL = BIN / "mcpctl"
SERVER = "conformance-fixture"
PROJECT = "conformance"
TOKEN_NAME = "conformance-suite"
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
class Gateway:
    url: str  # the project's MCP endpoint
    token: str


@dataclass(frozen=True)
class Cli:
    """The real `mcpctl` with its own config file, against one mcpd."""

    mcpd_url: str
    config: Path

    def __call__(self, *args: str, input: str | None = None) -> str:
        env = {**clean_env(), "MCPCTL_CONFIG": str(self.config), "MCPCTL_MCPD_URL": self.mcpd_url}
        result = subprocess.run(
            [str(MCPCTL), *args],
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise SetupError(
                f"mcpctl {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


def manifest(upstream_url: str) -> str:
    """The server (the fixture with its conformance surface, at `upstream_url`) and its one project."""
    documents = [
        {
            "kind": "Server",
            "metadata": {"name": SERVER},
            "spec": {"transport": "http", "url": upstream_url},
        },
        {
            "kind": "Project",
            "metadata": {"name": PROJECT},
            "spec": {"servers": [SERVER], "proxyModel": "direct", "toolPrefixMode": "never"},
        },
    ]
    return yaml.safe_dump_all(documents, sort_keys=False)


@contextmanager
def running_gateway(work: Path, upstream_url: str) -> Iterator[Gateway]:
    """mcpd with the conformance project (its server: the fixture at `upstream_url`) ready: its
    instance running and healthy."""
    data_dir = work / "mcpd-data"
    port = free_port()
    env = {**clean_env(), **MCPD_ENV, "MCPD_DATA_DIR": str(data_dir)}
    command = [str(MCPD), "--host", "127.0.0.1", "--port", str(port)]
    with background("mcpd", command, port, work / "mcpd.log", env):
        mcpd_url = f"http://127.0.0.1:{port}"
        _wait_ready(mcpd_url)
        cli = Cli(mcpd_url, work / "mcpctl" / "config.yaml")
        credentials = yaml.safe_load((data_dir / "admin-credentials").read_text())
        cli(
            "login", "--email", credentials["email"], "--password-stdin", input=credentials["password"] + "\n"
        )
        manifest_path = work / "conformance.yaml"
        manifest_path.write_text(manifest(upstream_url))
        cli("apply", "-f", str(manifest_path))
        token: str = cli.json("create", "mcptoken", TOKEN_NAME, "-p", PROJECT)["token"]
        _wait_running(cli)
        yield Gateway(url=f"{mcpd_url}/projects/{PROJECT}/mcp", token=token)


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


def _wait_running(cli: Cli) -> None:
    deadline = time.monotonic() + RUNNING_TIMEOUT
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = cli.json("get", "instances", "--server", SERVER)["items"]
        if any(
            i["status"]["status"] == "RUNNING" and i["status"]["healthStatus"] == "healthy" for i in items
        ):
            return
        time.sleep(POLL_INTERVAL)
    statuses = [(i["status"]["status"], i["status"]["healthStatus"]) for i in items]
    raise SetupError(f"{SERVER} has no running, healthy instance after {RUNNING_TIMEOUT}s: {statuses}")
