"""mcpd's cold start alone, restarted several times on one warm setup (`make bench-peers` measures it
once per run, docs/performance.md "Cold start").

    python -m bench.coldstart [--restarts 6] [--without-plan]

Starts mcpd the way `make bench-peers` does (embedded-stdio: the fixture as a supervised stdio
server, an McpToken), then `--restarts` times: stop it, start it again with the same argv,
environment, data dir and port, and time from that start until its project endpoint first answers
`echo` correctly (bench/peers_targets.py `cold_start`; the stop before it is not counted).
`--without-plan` deletes the launch plan before each restart (docs/supervisor.md "Spawning ahead"),
which shows what spawning ahead is worth. Prints each restart's seconds and the median. Every
restart is bounded by COLD_SECONDS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.peers_targets import COLD_SECONDS, cold_start, first_echo, start
from bench.procs import Processes, with_processes

PAUSE_SECONDS = 1.0  # between restarts: the previous mcpd's children are gone


def measure(procs: Processes, restarts: int, without_plan: bool) -> list[float]:
    (endpoint,) = start(procs, ["embedded-stdio"], procs.workdir / "none", procs.workdir / "none")
    first_echo(endpoint.target, time.monotonic() + COLD_SECONDS)
    found = []
    for _ in range(restarts):
        time.sleep(PAUSE_SECONDS)
        if without_plan:
            (procs.workdir / "mcpd-data" / "launch-plan").unlink(missing_ok=True)
        found.append(round(cold_start(procs, endpoint), 3))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coldstart", description="mcpd's cold start, restarted several times"
    )
    parser.add_argument("--restarts", type=int, default=6)
    parser.add_argument("--without-plan", action="store_true")
    args = parser.parse_args(argv)

    def body(procs: Processes) -> int:
        seconds = measure(procs, args.restarts, args.without_plan)
        print("mcpd cold start to the first tools/call, s:", " ".join(f"{s:.2f}" for s in seconds))
        print(f"median {statistics.median(seconds):.2f} s")
        return 0

    return with_processes("coldstart", body)


if __name__ == "__main__":
    sys.exit(main())
