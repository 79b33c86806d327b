"""What one message costs on this machine without any HTTP or MCP: a uvloop echo server in a process
of its own, and its CPU per round trip when the client sends one message at a time (each answer
wakes a sleeping client, each request a sleeping server) and with `concurrency` messages in flight
(the server finds work waiting more often). docs/performance.md "The default run, and what the
gaps are made of" reads split mode's extra hops against it.

    python -m bench.wakeup [--round-trips 20000] [--concurrency 1,8]

Loopback only; each level is bounded by --round-trips and --seconds, and the server ends with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

import uvloop

from bench.cpu import process_cpu_seconds

MESSAGE = b"x" * 300  # about a tools/call answer of the fixture's echo


async def _serve(ready: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    os.write(ready, f"{server.sockets[0].getsockname()[1]}\n".encode())
    os.close(ready)
    await asyncio.Event().wait()  # until killed


def _start_server() -> tuple[int, int]:
    """(pid, port) of an echo server in a forked process."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server
        os.close(read_end)
        try:
            uvloop.run(_serve(write_end))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as ready:
        return pid, int(ready.readline())


async def _load(port: int, concurrency: int, round_trips: int, deadline: float) -> int:
    async def one(count: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while done < count and time.monotonic() < deadline:
            writer.write(MESSAGE)
            await reader.readexactly(len(MESSAGE))
            done += 1
        writer.close()
        return done

    return sum(await asyncio.gather(*(one(round_trips // concurrency) for _ in range(concurrency))))


def measure(concurrency: int, round_trips: int, seconds: float) -> tuple[float, float, int]:
    """(the server's CPU µs per round trip, round trips per second, round trips done) at this
    concurrency; /proc counts CPU in clock ticks, so a short level can read 0."""
    pid, port = _start_server()
    try:
        before, began = process_cpu_seconds(pid), time.monotonic()
        done = uvloop.run(_load(port, concurrency, round_trips, began + seconds))
        took, used = time.monotonic() - began, process_cpu_seconds(pid) - before
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return 1e6 * used / max(done, 1), done / took, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=20_000)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most, per level")
    args = parser.parse_args(argv)
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        micros, rate, _ = measure(concurrency, args.round_trips, args.seconds)
        print(f"c={concurrency}: echo server CPU {micros:.1f} µs per round trip, {rate:.0f} round trips/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
