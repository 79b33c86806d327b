"""wrk as the load generator of `make bench-peers`: tools/call on one MCP session, driven by
bench/wrk/mcp.lua. wrk (C, epoll) costs the machine far less per request than any Python client, so
on 2 cores more of the CPU goes to the target; one session is how the issue measured the peers.

The harness opens the session (initialize, notifications/initialized: bench/load.py's RawSession),
checks one echo, hands wrk the session id, and closes the session afterwards. wrk runs
`min(c, 2)` threads and `c` connections for a bounded number of seconds; the Lua `done()` hook
prints one `mcpbench {json}` line that `parse()` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import RawSession, Target, WireTransport

SCRIPT = Path(__file__).resolve().parent / "wrk" / "mcp.lua"
TEXT = "wrk-echo"
MARK = "mcpbench "
TIMEOUT_SECONDS = 10  # a call slower than this is a wrk timeout error
THREADS_MAX = 2
SETTLE_SECONDS = 0.5


class WrkFailed(RuntimeError):
    """wrk did not run or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: calls answered 200 with the echoed text, everything else as errors."""

    requests: int
    seconds: float
    good: int
    errors: int
    first_error: str | None
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.good / self.seconds if self.seconds > 0 else 0.0


def parse(output: str) -> WrkResult:
    """The `mcpbench` line of mcp.lua's done() hook, from wrk's whole stdout."""
    for line in output.splitlines():
        if line.startswith(MARK):
            raw: dict[str, Any] = json.loads(line[len(MARK) :])
            break
    else:
        raise WrkFailed(f"no summary line in wrk output: {output[-500:]!r}")
    transport = {k: raw[k] for k in ("connect", "read", "write", "timeout") if raw[k]}
    errors = raw["bad_status"] + raw["bad_body"] + sum(transport.values())
    first = None
    if raw["bad_status"]:
        first = f"HTTP {raw['first_status']} x{raw['bad_status']}"
    elif raw["bad_body"]:
        first = f"answer without the echoed text x{raw['bad_body']}"
    elif transport:
        first = "socket errors " + ", ".join(f"{k} {v}" for k, v in transport.items())
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        good=raw["good"],
        errors=errors,
        first_error=first,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


def program() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkFailed("wrk is not installed (make bench-peers installs Debian's package)")
    return found


async def open_checked(target: Target, calls: int = 8) -> RawSession:
    """A session on the target that answered `calls` echoes correctly (CallFailed otherwise)."""
    session = RawSession(WireTransport(target.url), target, "legacy")
    await session.open()
    for n in range(calls):
        await session.call(f"check-{n}")
    return session


async def close(session: RawSession) -> None:
    """End the session after a settle: wrk stops with calls in flight, and mcp-proxy 0.13 dies
    (its shared stdio client breaks) when a session is deleted while its calls are still running."""
    await asyncio.sleep(SETTLE_SECONDS)
    with contextlib.suppress(Exception):
        await session.close()
    transport = session.transport
    if isinstance(transport, WireTransport):
        await transport.aclose()


def run_wrk(
    target: Target,
    session_id: str,
    concurrency: int,
    seconds: float,
    window: contextlib.AbstractContextManager[Any],
) -> WrkResult:
    """wrk against the target on `session_id` for `seconds`; `window` is entered around wrk alone."""
    argv = [
        program(),
        f"-t{min(concurrency, THREADS_MAX)}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
    ]
    env = {"MCP_SESSION": session_id, "MCP_TOKEN": target.token or "", "MCP_TOOL": target.tool}
    return run_script(argv, SCRIPT, target.url, env, seconds, window)


def run_script(
    argv: list[str],
    script: Path,
    url: str,
    env: dict[str, str],
    seconds: float,
    window: contextlib.AbstractContextManager[Any],
) -> WrkResult:
    """wrk (`argv`: the program and its load options) with a Lua `script` and its `env` (MCP_TEXT is
    added); `window` is entered around wrk alone."""
    argv = [*argv, f"--timeout={TIMEOUT_SECONDS}s", "-s", str(script), url]
    with window:
        done = subprocess.run(
            argv,
            env={**os.environ, "MCP_TEXT": TEXT, **env},
            capture_output=True,
            text=True,
            timeout=seconds + 2 * TIMEOUT_SECONDS,
            check=False,
        )
    if done.returncode != 0:
        raise WrkFailed(f"wrk exited with {done.returncode}: {done.stderr[-500:]}")
    return parse(done.stdout)
