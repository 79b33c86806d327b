"""`make newcomer`: how long a newcomer takes from `git clone` to a listed tool, doing what the README says.

    python3 -m bench.newcomer [--source REPO] [--rev REV] [--keep]

Clones REPO (default: this checkout; REV default: its HEAD, so commit first) into a temporary
directory and, with a fresh HOME (no pip cache, no CLI config, a fresh data dir), starts `make run` in
the background there, then runs the README's walkthrough commands (bench/readme.py) in one bash
session up to and including the first `mcpctl tools`. mcpd listens on a free port rather than 3000
(`MCPD_PORT`, and the commands are rewritten to it), so a running mcpd does not get in the way.
Prints the seconds of each step and the total; exit 1 if a step fails or the tool list lacks
`time__get_current_time`. Not a test and not part of `make test`: it installs from the package index.
Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.readme import README, ROOT, at_port, commands, walkthrough

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
READY_SECONDS = 900.0  # `make run`'s first start installs from the package index
STEP_MARK = "@@newcomer-step"
LISTED = "time__get_current_time"


def first_tool_list(markdown: str) -> list[str]:
    """The README's walkthrough commands up to and including the first `mcpctl tools`."""
    steps: list[str] = []
    for block in walkthrough(markdown):
        for command in commands(block):
            steps.append(command)
            if command.startswith("mcpctl tools"):
                return steps
    raise SystemExit("the README's walkthrough has no `mcpctl tools` command")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `make run`'s process group (make, mcpd, its servers); SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _script(steps: list[str], port: int) -> str:
    """The steps in one bash session, a marker with the time before the first and after each."""
    lines = ["set -euo pipefail", f"echo {STEP_MARK} start $EPOCHREALTIME"]
    for index, step in enumerate(steps):
        lines += [at_port(step, port), f"echo {STEP_MARK} {index} $EPOCHREALTIME"]
    return "\n".join(lines) + "\n"


def measure(source: str, rev: str, work: Path) -> int:
    home, clone = work / "home", work / "mcpctl"
    home.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MCPD_", "MCPCTL_", "MCPLOCAL_"))
    }
    env |= {"HOME": str(home), "PATH": SYSTEM_PATH}
    timings: list[tuple[str, float]] = []

    started = time.monotonic()
    subprocess.run(["git", "clone", "--quiet", source, str(clone)], env=env, check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", rev], env=env, check=True)
    timings.append((f"git clone {source} ({rev[:12]})", time.monotonic() - started))
    steps = first_tool_list((clone / README.relative_to(ROOT)).read_text())  # the clone's README

    mark = time.monotonic()
    log_path = work / "make-run.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"], cwd=clone, env={**env, "MCPD_PORT": str(port)}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        while not _ready(url):
            if make.poll() is not None or time.monotonic() - mark > READY_SECONDS:
                print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
                print(f"make run did not serve {url}/readyz", file=sys.stderr)
                return 1
            time.sleep(0.2)
        timings.append(("make run (install, then mcpd ready)", time.monotonic() - mark))

        mark = time.monotonic()
        run = subprocess.run(
            ["bash", "-c", _script(steps, port)], cwd=clone, env={**env, "MCPCTL_MCPD_URL": url},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        _stop(make)
    marks = [float(found[1]) for found in re.finditer(rf"^{STEP_MARK} \S+ ([\d.]+)$", run.stdout, re.M)]
    timings += [(step, end - begin) for step, begin, end in zip(steps, marks, marks[1:], strict=False)]
    total = sum(seconds for _, seconds in timings)

    for step, seconds in timings:
        print(f"{seconds:8.1f} s  {step}")
    print(f"{total:8.1f} s  total: from git clone to a listed tool")
    output = re.sub(rf"^{STEP_MARK} .*\n", "", run.stdout, flags=re.M)
    if run.returncode != 0 or len(marks) != len(steps) + 1 or LISTED not in output:
        print(
            f"--- the README's commands failed (exit {run.returncode}) ---\n{output}{run.stderr}",
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--source", default=str(ROOT), help="repository to clone (default: this checkout)")
    parser.add_argument("--rev", help="revision to check out (default: the source's HEAD)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (its path is printed)"
    )
    args = parser.parse_args()
    rev = (
        args.rev
        or subprocess.run(
            ["git", "-C", args.source, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    work = Path(tempfile.mkdtemp(prefix="mcpctl-newcomer-"))
    try:
        code = measure(args.source, rev, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
