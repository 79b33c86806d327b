"""Real processes on 127.0.0.1: the `mcpd` console script as a subprocess, the `mcpctl` CLI as another.

`mcpd` is one daemon per test module (module scope), on SQLite and on PostgreSQL; tests in a module
share it and stay independent by using their own object names and their own CLI config file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml

from tests.conftest import PG_HOST, create_pg_database, drop_pg_database
from tests.processes import clean_env as _clean_env
from tests.processes import free_port

BIN = Path(sys.executable).parent
MCPD = shutil.which("mcpd", path=str(BIN)) or str(BIN / "mcpd")
MCPCTL = shutil.which("mcpctl", path=str(BIN)) or str(BIN / "mcpctl")

# Argon2 at its lowest cost for test daemons: a default-cost hash is ~0.3 s of CPU, run one at a time at
# the lowest CPU priority, so on a loaded 2-core box every login waited seconds behind the other work.
# A module whose subject is the hashing cost (test_fair_capacity) sets its own.
CHEAP_PASSWORD_HASHING = {"MCPD_PASSWORD_HASH_TIME_COST": "1", "MCPD_PASSWORD_HASH_MEMORY_KIB": "1024"}

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLI_TIMEOUT = 30.0
POLL_INTERVAL = 0.1


@dataclass
class Mcpd:
    """One real `mcpd` process; `restart()` keeps its data dir, database and port."""

    backend: str
    data_dir: Path
    stderr_path: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self._wait_ready()

    def launch(self) -> None:
        """Start the process, without waiting until it is ready."""
        assert self.process is None, "mcpd is already running"
        env = {
            **_clean_env(),
            "MCPD_DATA_DIR": str(self.data_dir),
            **CHEAP_PASSWORD_HASHING,
            **self.extra_env,
        }
        if self.database_url is not None:
            env["MCPD_DATABASE_URL"] = self.database_url
        self._stderr = self.stderr_path.open("ab")  # appended across restarts: the whole log stays greppable
        self.process = subprocess.Popen(
            [MCPD, "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code, self.process = self.process.returncode, None
                    self._close_log()
                    pytest.fail(f"mcpd exited with {code} before it was ready:\n{self.log()}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(POLL_INTERVAL)
        self.stop()
        pytest.fail(f"mcpd was not ready within {READY_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM and a bounded wait; SIGKILL if it is still there. It must have exited, and on its own:
        a daemon that ignores SIGTERM or fails while shutting down is a bug."""
        process, self.process = self.process, None
        if process is None:
            return
        killed = False
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    killed = True
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT)
        finally:
            self._close_log()
        assert process.returncode is not None, "mcpd did not exit"
        assert not killed, f"mcpd ignored SIGTERM for {STOP_TIMEOUT}s and was killed"
        # uvicorn shuts down cleanly, then re-raises the signal: -SIGTERM is as clean an exit as 0
        assert process.returncode in (0, -signal.SIGTERM), (
            f"mcpd exited with {process.returncode} on SIGTERM:\n{self.log()[-3000:]}"
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def log(self) -> str:
        """Everything mcpd wrote to stderr (and stdout) so far, across restarts."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def admin_credentials(self) -> dict[str, str]:
        """The credentials mcpd generated on first start in <dataDir>/admin-credentials."""
        data: dict[str, str] = yaml.safe_load((self.data_dir / "admin-credentials").read_text())
        return data


@contextmanager
def running_mcpd(base: Path, backend: str, **extra_env: str) -> Iterator[Mcpd]:
    """Start mcpd on a fresh data dir (and, for PostgreSQL, a fresh database); stop and clean up after."""
    base.mkdir(parents=True, exist_ok=True)
    pg_name: str | None = None
    database_url: str | None = None
    if backend == "postgresql":
        pg_name = asyncio.run(create_pg_database())
        database_url = f"postgresql+asyncpg://postgres@{PG_HOST}/{pg_name}"
    daemon = Mcpd(
        backend=backend,
        data_dir=base / "data",
        stderr_path=base / "mcpd.stderr",
        database_url=database_url,
        extra_env=dict(extra_env),
    )
    try:
        daemon.start()
        yield daemon
    finally:
        try:
            daemon.stop()
        finally:
            if pg_name is not None:
                asyncio.run(drop_pg_database(pg_name))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`mcpd` runs on SQLite; a module whose behaviour depends on the database end to end (restarts,
    round trips, token lifecycles) asks for PostgreSQL too with `BACKENDS = ("sqlite", "postgresql")`.
    Every route runs on both databases in tests/integration."""
    if "mcpd" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", ("sqlite",))
        metafunc.parametrize("mcpd", backends, indirect=True, scope="module")


@pytest.fixture(scope="module")
def mcpd(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mcpd]:
    """A real mcpd shared by the tests of one module, on the module's database backends."""
    with running_mcpd(tmp_path_factory.mktemp(f"mcpd-{request.param}"), request.param) as daemon:
        yield daemon


@dataclass(frozen=True)
class Nowhere:
    """An mcpd URL nothing listens on, for commands that must work without talking to mcpd."""

    url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")


@dataclass
class Cli:
    """Runs the real `mcpctl` against one mcpd with its own config file (its own login session)."""

    daemon: Mcpd | Nowhere
    config: Path
    token: str | None = None  # MCPCTL_TOKEN; by default none is inherited

    def with_token(self, token: str) -> Cli:
        """The same CLI with MCPCTL_TOKEN set, which wins over the config file."""
        return dataclasses.replace(self, token=token)

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**_clean_env(), "MCPCTL_CONFIG": str(self.config), "MCPCTL_MCPD_URL": self.daemon.url}
        if self.token is not None:
            env["MCPCTL_TOKEN"] = self.token
        return subprocess.run(
            [MCPCTL, *args],
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run and insist on exit 0 (the failure shows what mcpctl said)."""
        result = self(*args, input=input)
        assert result.returncode == 0, f"mcpctl {' '.join(args)} → {result.returncode}\n{result.stderr}"
        return result

    def login(self, email: str, password: str) -> None:
        self.ok("login", "--email", email, "--password-stdin", input=password + "\n")

    def session_token(self) -> str:
        """The bearer `login` stored in this CLI's config file."""
        token: str = yaml.safe_load(self.config.read_text())["token"]
        return token

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json").stdout)


def _cli_maker(daemon: Mcpd, base: Path) -> Callable[[], Cli]:
    counter = itertools.count()

    def make() -> Cli:
        return Cli(daemon, base / f"mcpctl-{next(counter)}" / "config.yaml")

    return make


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mcpd]:
    """One mcpd (SQLite) per module that runs upstreams (the test upstreams on its PATH, quick probes);
    a module adds settings with a module-level `MCPD_ENV = {...}`."""
    from tests.e2e.upstreams import upstream_env  # upstreams imports this module

    env = {**upstream_env(), **getattr(request.module, "MCPD_ENV", {})}
    name = request.module.__name__.rsplit(".", 1)[-1]
    with running_mcpd(tmp_path_factory.mktemp(name), "sqlite", **env) as mcpd:
        yield mcpd


@pytest.fixture(scope="module")
def make_cli(daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Cli]:
    """CLIs (each with a config file of its own) pointed at the module's `daemon`."""
    return _cli_maker(daemon, tmp_path_factory.mktemp("clis"))


def login_admin(cli: Cli) -> Cli:
    """Log `cli` in with the credentials mcpd generated on its first start."""
    assert isinstance(cli.daemon, Mcpd)
    creds = cli.daemon.admin_credentials()
    cli.login(creds["email"], creds["password"])
    return cli


@pytest.fixture
def cli_factory(mcpd: Mcpd, tmp_path: Path) -> Callable[[], Cli]:
    """Make CLIs with separate config files, e.g. one per user."""
    return _cli_maker(mcpd, tmp_path)


@pytest.fixture
def cli(cli_factory: Callable[[], Cli]) -> Cli:
    """The CLI with a fresh, empty config (not logged in)."""
    return cli_factory()


@pytest.fixture(scope="module")
def admin(mcpd: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI logged in as the generated admin, one session per module (tests that log out make
    their own with `login_admin`)."""
    return login_admin(_cli_maker(mcpd, tmp_path_factory.mktemp("admin"))())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]
