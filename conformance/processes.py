"""The processes the harness runs on 127.0.0.1: the fixture server over HTTP, the auth proxy, mcpd,
`mcplocal serve`.
Each has a log file in the work dir, a bounded wait until it listens, and a bounded stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.processes import clean_env, free_port

from conformance.suites import ROOT, SetupError

PYTHON = sys.executable
BIN = Path(PYTHON).parent
FIXTURE = ROOT / "tests" / "fixtures" / "mcp_fixture_server.py"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
POLL_INTERVAL = 0.1


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Started:
    """A process of the harness, started and not yet known to listen: `listening()` waits for it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    url: str  # what it serves, once it listens

    def listening(self) -> str:
        """Wait until it listens on its port (at most READY_TIMEOUT); its URL."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(self.port):
            if self.process.poll() is not None:
                raise SetupError(
                    f"{self.name} exited with {self.process.returncode} before listening; see {self.log}"
                )
            if time.monotonic() > deadline:
                raise SetupError(
                    f"{self.name} did not listen on {self.port} within {READY_TIMEOUT}s; see {self.log}"
                )
            time.sleep(POLL_INTERVAL)
        return self.url


@contextmanager
def started(
    name: str, command: Sequence[str], port: int, log: Path, env: dict[str, str], url: str
) -> Iterator[Started]:
    """Run `command` until the block ends (then stop its process group); the caller waits for it to
    listen with `listening()` when it needs it, so several processes can start at once."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            yield Started(name, process, port, log, url)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group, a bounded wait, then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def fixture_http(work: Path, name: str = "fixture") -> Iterator[Started]:
    """The fixture server with the conformance surface over Streamable HTTP, at the URL `/mcp`.
    Its log is `<name>.log` in the work dir."""
    port = free_port()
    command = [PYTHON, str(FIXTURE), "http", "--port", str(port), "--conformance"]
    url = f"http://127.0.0.1:{port}/mcp"
    with started(f"the {name} server", command, port, work / f"{name}.log", clean_env(), url) as process:
        yield process


def fixture_stdio_command() -> list[str]:
    """The fixture with the conformance surface over stdio, as mcpd runs it: command, then args."""
    return [PYTHON, str(FIXTURE), "stdio", "--conformance"]


@contextmanager
def authproxy(
    target_origin: str,
    work: Path,
    name: str,
    *,
    token: str = "",
    project_tokens: Mapping[str, str] | None = None,
) -> Iterator[Started]:
    """conformance.authproxy in front of `target_origin` (scheme://host:port), adding `token` to every
    request, or each project's token from `project_tokens` to its `/projects/<project>/` paths; its URL
    is the proxy's origin."""
    port = free_port()
    command = [PYTHON, "-m", "conformance.authproxy", "--port", str(port), "--target", target_origin]
    env = {
        **clean_env(),
        "AUTHPROXY_TOKEN": token,
        "AUTHPROXY_PROJECT_TOKENS": json.dumps(dict(project_tokens or {})),
    }
    log = work / f"authproxy-{name}.log"
    with started(f"the auth proxy ({name})", command, port, log, env, f"http://127.0.0.1:{port}") as process:
        yield process


@contextmanager
def mcplocal_serve(mcpd_url: str, work: Path) -> Iterator[Started]:
    """`mcplocal serve --mcpd-url` (split data plane) in front of mcpd; its URL is its origin."""
    port = free_port()
    command = [str(BIN / "mcplocal"), "serve", "--mcpd-url", mcpd_url, "--port", str(port)]
    log = work / "mcplocal.log"
    with started("mcplocal serve", command, port, log, clean_env(), f"http://127.0.0.1:{port}") as process:
        yield process
