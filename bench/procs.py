"""The processes a benchmark run needs, all on 127.0.0.1: the fixture upstream in its own Streamable
HTTP mode ("direct"), and an mcpd on a temporary data dir (SQLite) that supervises the same fixture
over stdio and serves it through a project endpoint ("gateway"), set up with the real CLI.

Every child starts in a session of its own; `Processes.close()` stops each group (SIGTERM, a bounded
wait, then SIGKILL), and also whatever the group leader had started that lives elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import yaml
from conformance.gateway import Cli
from conformance.suites import SetupError
from tests.processes import clean_env, descendants, free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "mcp_fixture_server.py"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
MCPD = shutil.which("mcpd", path=str(BIN)) or str(BIN / "mcpd")
MCPLOCAL = shutil.which("mcplocal", path=str(BIN)) or str(BIN / "mcplocal")
MCPCTL = shutil.which("mcpctl", path=str(BIN)) or str(BIN / "mcpctl")
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
CLI_SECONDS = 30.0
T = TypeVar("T")


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@dataclass
class Processes:
    """The children of one run; `close()` is idempotent and safe from a signal's unwinding."""

    workdir: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    launches: dict[int, tuple[str, list[str], dict[str, str]]] = field(default_factory=dict)  # by pid
    started_at: dict[int, float] = field(default_factory=dict)  # by pid: time.monotonic() before the exec

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a child. Python children may cache their bytecode (a warm install, as pip leaves
        one): PYTHONDONTWRITEBYTECODE, set in some development setups, is not passed on, or every
        start of an editable install would compile its modules again (cold start)."""
        log = (self.workdir / f"{name}.log").open("ab")
        child_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        try:
            began = time.monotonic()
            process = subprocess.Popen(
                argv, env=child_env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        finally:
            log.close()
        self.children.append(process)
        self.launches[process.pid] = (name, argv, env)
        self.started_at[process.pid] = began
        return process

    def wait_listening(self, name: str, process: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SetupError(f"{name} exited with {process.returncode}:\n{self.log(name)[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise SetupError(f"{name} did not listen on {port} within {STARTUP_SECONDS:g}s")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def restart(self, pid: int) -> subprocess.Popen[bytes]:
        """Stop the child `pid` and what it started, then start it again the same way (a cold
        start on a warm install: same data, same port)."""
        process = next(p for p in self.children if p.pid == pid)
        self.children.remove(process)
        _stop(process)
        name, argv, env = self.launches[pid]
        return self.start(name, argv, env)

    def close(self) -> None:
        children, self.children = self.children, []
        for process in reversed(children):
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    strays = descendants(process.pid)
    _killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        _killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)
    for pid in strays:  # e.g. supervised upstreams in sessions of their own
        _kill(pid, signal.SIGKILL)


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the `finally` that stops every child


def with_processes(tool: str, body: Callable[[Processes], T], *failures: type[Exception]) -> T | int:
    """`body(procs)` in a temporary directory; every child is stopped afterwards, also on SIGTERM,
    SIGHUP or Ctrl-C. A SetupError (or one of `failures`) or an interruption is reported on stderr
    and comes back as the exit status (1, 130) instead of `body`'s result."""
    caught: tuple[type[Exception], ...] = (SetupError, *failures)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    with tempfile.TemporaryDirectory(prefix=f"mcpctl-{tool}-") as workdir:
        procs = Processes(Path(workdir))
        try:
            return body(procs)
        except caught as exc:
            print(f"{tool}: setup failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{tool}: interrupted", file=sys.stderr)
            return 130
        finally:
            procs.close()


@dataclass(frozen=True)
class Served:
    """An MCP endpoint under test: its URL, the bearer it needs, and the pid of the server process."""

    url: str
    token: str | None
    pid: int  # the process profiled (the endpoint's)
    others: tuple[int, ...] = ()  # further processes whose CPU counts (split mode: mcpd)


def start_direct(procs: Processes) -> Served:
    """The fixture serving Streamable HTTP itself."""
    port = free_port()
    process = procs.start("fixture", [PYTHON, str(FIXTURE), "http", "--port", str(port)], clean_env())
    procs.wait_listening("fixture", process, port)
    return Served(f"http://127.0.0.1:{port}/mcp", None, process.pid)


def start_mcpd(procs: Processes, **extra_env: str) -> tuple[str, Cli, int]:
    """An all-in-one mcpd on a temporary data dir, its admin logged in: (base URL, CLI, pid).
    The project's own servers (the venv's and node_modules') are on its PATH."""
    port = free_port()
    data = procs.workdir / "mcpd-data"
    env = {
        **clean_env(),
        "MCPD_DATA_DIR": str(data),
        "MCPD_LOG_LEVEL": "warning",
        "PATH": os.pathsep.join([str(BIN), str(ROOT / "node_modules" / ".bin"), os.environ.get("PATH", "")]),
        **extra_env,
    }
    process = procs.start("mcpd", [MCPD, "--host", "127.0.0.1", "--port", str(port)], env)
    procs.wait_listening("mcpd", process, port)
    base = f"http://127.0.0.1:{port}"
    cli = Cli(base, procs.workdir / "mcpctl.yaml")
    _wait_file(data / "admin-credentials", process)
    creds = yaml.safe_load((data / "admin-credentials").read_text())
    cli("login", "--email", creds["email"], "--password-stdin", input=creds["password"] + "\n")
    return base, cli, process.pid


def start_gateway(procs: Processes, replicas: int = 1) -> Served:
    """mcpd with the fixture as stdio server `fx` in project `bench`, and an McpToken for it."""
    return start_gateways(procs, replicas)[0]


def start_gateways(procs: Processes, replicas: int = 1, http_upstream: str | None = None) -> list[Served]:
    """mcpd with the fixture as stdio server `fx` in project `bench`, and an McpToken for it; with
    `http_upstream` (a fixture's MCP URL) also http server `fx` in project `bench-http`. The
    projects' endpoints, in that order."""
    base, cli, pid = start_mcpd(procs)
    server = ["--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE), "--replicas", str(replicas)]
    served = [_project(cli, base, pid, "bench", "fx", server)]
    wait_running(cli, "fx", replicas)
    if http_upstream is not None:
        served.append(
            _project(cli, base, pid, "bench-http", "fxh", ["--transport", "http", "--url", http_upstream])
        )
    return served


def _project(cli: Cli, base: str, pid: int, project: str, server: str, spec: list[str]) -> Served:
    cli("create", "server", server, *spec)
    cli("create", "project", project, "--server", server)
    token = cli.json("create", "mcptoken", project, "-p", project)["token"]
    return Served(f"{base}/projects/{project}/mcp", token, pid)


def start_split(procs: Processes, gateway: Served) -> Served:
    """`mcplocal serve` in front of the gateway's mcpd: the same project and token over the
    data-plane link."""
    return start_splits(procs, gateway)[0]


def start_splits(procs: Processes, *gateways: Served) -> list[Served]:
    """One `mcplocal serve` in front of the gateways' mcpd: the same projects and tokens over the
    data-plane link, in the order given."""
    port = free_port()
    mcpd_url, _ = gateways[0].url.split("/projects/", 1)
    env = clean_env()
    argv = [MCPLOCAL, "serve", "--mcpd-url", mcpd_url, "--port", str(port), "--log-level", "warning"]
    process = procs.start("mcplocal", argv, env)
    procs.wait_listening("mcplocal", process, port)
    return [
        Served(
            f"http://127.0.0.1:{port}/projects/{g.url.split('/projects/', 1)[1]}",
            g.token,
            process.pid,
            (g.pid,),
        )
        for g in gateways
    ]


def _wait_file(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SetupError(f"mcpd did not write {path}")
        time.sleep(0.05)


def wait_running(cli: Cli, server: str, count: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        items: list[dict[str, Any]] = cli.json("get", "instances", "--server", server)["items"]
        status = [i["status"] for i in items]
        if len(status) == count and all(
            s["status"] == "RUNNING" and s["healthStatus"] == "healthy" for s in status
        ):
            return
        time.sleep(0.2)
    raise SetupError(f"{count} instance(s) of {server} not RUNNING and healthy within {STARTUP_SECONDS:g}s")


def start_http_upstream(procs: Processes, counter: Path) -> Served:
    """The fixture serving Streamable HTTP as a gateway's http upstream, counting the connections
    it accepts into `counter` (bench/upstream.py)."""
    port = free_port()
    argv = [PYTHON, str(ROOT / "bench" / "upstream.py"), str(counter), "--", "http", "--port", str(port)]
    process = procs.start("upstream-http", argv, clean_env())
    procs.wait_listening("upstream-http", process, port)
    return Served(f"http://127.0.0.1:{port}/mcp", None, process.pid)


def start_mcp_proxy(procs: Processes, program: Path) -> Served:
    """mcp-proxy (PyPI) bridging the stdio fixture to Streamable HTTP at /mcp, stateful (sessions)."""
    port = free_port()
    argv = [str(program), "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    argv += ["--pass-environment", PYTHON, str(FIXTURE)]
    process = procs.start("mcp-proxy", argv, clean_env())
    procs.wait_listening("mcp-proxy", process, port)
    return Served(f"http://127.0.0.1:{port}/mcp", None, process.pid)


def start_supergateway(procs: Processes, program: Path) -> Served:
    """supergateway (npm) bridging the stdio fixture to Streamable HTTP at /mcp. `--stateful`: its
    stateless mode spawns a fixture per POST, which would measure Python's start-up, not the bridge;
    stateful spawns one per session."""
    port = free_port()
    argv = [str(program), "--stdio", f"{PYTHON} {FIXTURE}", "--outputTransport", "streamableHttp"]
    argv += ["--stateful", "--port", str(port), "--logLevel", "none"]
    process = procs.start("supergateway", argv, clean_env())
    procs.wait_listening("supergateway", process, port)
    return Served(f"http://127.0.0.1:{port}/mcp", None, process.pid)
