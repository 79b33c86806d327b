"""The README is a runnable walkthrough (issue 15): its ```sh blocks, read from README.md itself, run in
order in one bash session (`set -euo pipefail`, so what one block exports the next one has) against
mcpd started the README's way (`make run`), with a fresh HOME (a fresh data dir and CLI config) and a
working directory that stands in for the checkout. Every command must succeed, the tool calls
included. Left out, as bench/readme.py says: the `make …` blocks and those marked `# needs …`."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from bench.readme import MCPD_ADDRESS, README, at_port, commands, needs_more, sh_blocks, walkthrough

from tests.e2e.makerun import make_run
from tests.e2e.upstreams import ROOT

pytestmark = pytest.mark.e2e

# What the blocks use from the checkout; links, so nothing the blocks write lands in the repository.
CHECKOUT = (".venv", "examples", "Makefile", "pyproject.toml", "src", "README.md")
# No venv or node_modules on it: the README's own `export PATH=…` has to make mcpctl found.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
MARK = "@@readme-block"
QUIET = "{ set +x; } 2>/dev/null;"  # the markers themselves are not traced
WALKTHROUGH_SECONDS = 120.0
GIT = ("git", "-c", "user.name=README", "-c", "user.email=readme@example.com")


def _walkthrough() -> list[str]:
    return walkthrough(README.read_text())


def test_the_walkthrough_is_what_the_readme_shows() -> None:
    """The extraction finds the walkthrough (the test below cannot pass on an empty README), skips only
    the make and marked blocks, and nothing in it fetches an unpinned package or names another mcpd."""
    blocks = sh_blocks(README.read_text())
    steps = _walkthrough()
    run = [command for block in steps for command in commands(block)]
    assert len(steps) >= 8 and len(run) >= 40, f"{len(steps)} blocks, {len(run)} commands"
    assert any(command.startswith("mcpctl tools -p demo") for command in run)
    assert any(command.startswith("mcpctl call -p demo time__get_current_time") for command in run)
    assert any("| mcpctl login" in command for command in run)
    assert any(command.startswith("mcpctl test mcp") for command in run)
    assert [command.split()[:2] for command in commands(blocks[0])] == [["make", "run"], ["make", "test"]]
    assert blocks[0] not in steps
    marked = [block for block in blocks if needs_more(block)]
    assert marked and all(block not in steps for block in marked)
    assert any("node_modules/.bin/mcp-inspector" in block for block in marked)
    for block in blocks:
        assert not re.search(r"\bnpx (?!--no-install)", block), f"npx would fetch another version:\n{block}"
    addresses = set(re.findall(r"127\.0\.0\.1:\d+", "".join(steps)))
    assert addresses <= {MCPD_ADDRESS}, addresses


def _checkout_like(where: Path, env: dict[str, str]) -> Path:
    """A directory that behaves like the checkout for the blocks: links to what they use, and a git
    repository of its own with one commit (the walkthrough's git server reads its log)."""
    where.mkdir()
    for name in CHECKOUT:
        (where / name).symlink_to(ROOT / name)
    for args in (("init", "-q"), ("commit", "-q", "--allow-empty", "-m", "a checkout")):
        subprocess.run([*GIT, *args], cwd=where, env=env, check=True, capture_output=True)
    return where


def _script(blocks: list[str], port: int) -> str:
    """One bash script of the blocks (traced), each announced by a marker line with the time, so a
    failure names its block and a run tells where its time went."""
    parts = ["set -euo pipefail", "PS4='+ '", "set -x"]
    for index, block in enumerate(blocks):
        parts += [f"{QUIET} echo {MARK} {index} $EPOCHREALTIME; set -x", at_port(block, port)]
    parts.append(f"{QUIET} echo {MARK} done $EPOCHREALTIME")
    return "\n".join(parts) + "\n"


def _markers(output: str) -> list[tuple[str, float]]:
    return [(found[1], float(found[2])) for found in re.finditer(rf"^{MARK} (\S+) ([\d.]+)$", output, re.M)]


def _failed_block(blocks: list[str], output: str) -> str:
    """The block that was running when the script stopped, and what it printed."""
    index, _, printed = output.rpartition(f"{MARK} ")[2].partition("\n")
    index = index.split()[0] if index else ""
    block = blocks[int(index)] if index.isdigit() else "(before the first block)"
    return f"block {index}:\n{block}\n--- its output ---\n{printed}"


def test_the_readme_walkthrough_runs_top_to_bottom_on_a_fresh_data_dir(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    blocks = _walkthrough()
    home = tmp_path / "home"
    with make_run(home, tmp_path / "make-run.log", PATH=SYSTEM_PATH) as daemon:
        env = {"HOME": str(home), "PATH": SYSTEM_PATH, "MCPCTL_MCPD_URL": daemon.url, "NO_COLOR": "1"}
        checkout = _checkout_like(tmp_path / "checkout", env)
        started = time.monotonic()
        run = subprocess.run(
            [bash, "-c", _script(blocks, daemon.port)], cwd=checkout, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WALKTHROUGH_SECONDS,
        )  # fmt: skip
        seconds = time.monotonic() - started
        log = daemon.log()
    failed = _failed_block(blocks, run.stdout)
    assert run.returncode == 0, f"exit {run.returncode} in {failed}\n--- mcpd ---\n{log[-3000:]}"
    marks = _markers(run.stdout)
    assert [name for name, _ in marks] == [*map(str, range(len(blocks))), "done"], run.stdout[-3000:]
    # the tool list and the calls answered (the time server's JSON, the git server's log of our commit)
    assert "time__get_current_time" in run.stdout and '"timezone": "UTC"' in run.stdout
    assert "Message: a checkout" in run.stdout
    took = ", ".join(f"{a[0]}: {b[1] - a[1]:.1f}" for a, b in itertools.pairwise(marks))
    print(f"README walkthrough: {len(blocks)} blocks in {seconds:.1f} s (seconds per block: {took})")
