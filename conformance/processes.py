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


@contextmanager
def background(
    name: str, command: Sequence[str], port: int, log: Path, env: dict[str, str]
) -> Iterator[None]:
    """Run `command` until the block ends; it must be listening on `port` within READY_TIMEOUT."""
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
            deadline = time.monotonic() + READY_TIMEOUT
            while not _listening(port):
                if process.poll() is not None:
                    raise SetupError(f"{name} exited with {process.returncode} before listening; see {log}")
                if time.monotonic() > deadline:
                    raise SetupError(f"{name} did not listen on {port} within {READY_TIMEOUT}s; see {log}")
                time.sleep(POLL_INTERVAL)
            yield
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
def fixture_http(work: Path, name: str = "fixture") -> Iterator[str]:
    """The fixture server with the conformance surface over Streamable HTTP; yields its MCP URL.
    Its log is `<name>.log` in the work dir."""
    port = free_port()
    command = [PYTHON, str(FIXTURE), "http", "--port", str(port), "--conformance"]
    with background(f"the {name} server", command, port, work / f"{name}.log", clean_env()):
        yield f"http://127.0.0.1:{port}/mcp"


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
) -> Iterator[str]:
    """conformance.authproxy in front of `target_origin` (scheme://host:port), adding `token` to every
    request, or each project's token from `project_tokens` to its `/projects/<project>/` paths; yields
    the proxy's origin."""
    port = free_port()
    command = [PYTHON, "-m", "conformance.authproxy", "--port", str(port), "--target", target_origin]
    env = {
        **clean_env(),
        "AUTHPROXY_TOKEN": token,
        "AUTHPROXY_PROJECT_TOKENS": json.dumps(dict(project_tokens or {})),
    }
    with background(f"the auth proxy ({name})", command, port, work / f"authproxy-{name}.log", env):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def mcplocal_serve(mcpd_url: str, work: Path) -> Iterator[str]:
    """`mcplocal serve --mcpd-url` (split data plane) in front of mcpd; yields its origin."""
    port = free_port()
    command = [str(BIN / "mcplocal"), "serve", "--mcpd-url", mcpd_url, "--port", str(port)]
    with background("mcplocal serve", command, port, work / "mcplocal.log", clean_env()):
        yield f"http://127.0.0.1:{port}"
