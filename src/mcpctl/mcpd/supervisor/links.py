"""Links: the wire to one upstream MCP server, carrying JSON-RPC messages as dicts.

A link is opened, then `send` and `receive` run until it closes; `receive` raises `LinkClosed`
(with the reason) once the peer is gone. Messages stay plain dicts so that whatever an upstream
returns (structuredContent, `_meta`, fields newer than this code) is forwarded untouched.

- `StdioLink` runs a command as a child process in its own process group with a minimal
  environment; stdout is the MCP channel (one JSON message per line), stderr goes to a `LineRing`.
  Closing terminates the whole group: SIGTERM, a grace period, SIGKILL, then the child is reaped.
  On Linux the child is SIGKILLed by the kernel when mcpd dies, even by `kill -9`
  (PR_SET_PDEATHSIG): a killed mcpd's lease on the server ends, and its instances must not outlive it.
- `StreamableHttpLink` (streamable.py) speaks Streamable HTTP to a remote server on mcpd's own
  keep-alive HTTP/1.1 pool; `SseLink` (sse_link.py) the legacy HTTP+SSE transport, through the SDK,
  when the URL path ends in `/sse`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mcpctl.core import jsontext
from mcpctl.mcpd.supervisor.groups import GroupLedger
from mcpctl.mcpd.supervisor.ring import LineRing

logger = logging.getLogger(__name__)

# Variables a child inherits from mcpd; everything else comes from the server's own `env`.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
)
MAX_LINE_BYTES = 16 * 1024 * 1024
# What a link received: the message, and the id of our request on whose response stream it came
# (None when the link cannot tell: stdio, the HTTP GET stream, legacy SSE).
Received = tuple[dict[str, Any], Any]


_PR_SET_PDEATHSIG = 1


def _death_signal() -> Callable[[], None] | None:
    """What the child runs before exec so that it dies with mcpd (Linux); None elsewhere. libc and
    prctl are looked up here, in mcpd, never in the forked child."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # mcpd died before the death signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


class LinkClosed(Exception):
    """The upstream is gone; `str()` says why."""


class SpawnError(Exception):
    """The upstream could not be started at all (no such command, no such directory)."""


class Link(Protocol):
    pid: int | None

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> Received: ...

    async def close(self) -> None: ...

    @property
    def closed_reason(self) -> str | None: ...


def minimal_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.update(extra)
    return env


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol of asyncio subprocesses, plus an event set the moment the child exits.

    `Process.wait()` also waits for the pipes to close, which never happens while a grandchild
    holds stdout; the supervisor must notice the child's death at once, so it listens here."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop):
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


@dataclass
class StdioLink:
    """A child process speaking MCP over its stdin/stdout."""

    process: asyncio.subprocess.Process
    protocol: _ExitAwareProtocol
    stderr: LineRing
    grace_seconds: float
    pid: int | None = None
    groups: GroupLedger | None = None  # where the process group is recorded until it is killed
    _reason: str | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closed: asyncio.Event = field(default_factory=asyncio.Event)
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def open(
        cls,
        command: str,
        args: list[str],
        env: Mapping[str, str],
        cwd: str | None,
        *,
        stderr: LineRing,
        grace_seconds: float = 5.0,
        groups: GroupLedger | None = None,
    ) -> StdioLink:
        full_env = minimal_env(env)
        if cwd is not None and not os.path.isdir(cwd):
            raise SpawnError(f"working directory {cwd!r} does not exist")
        executable = shutil.which(command, path=full_env.get("PATH")) if os.sep not in command else command
        if executable is None:
            raise SpawnError(f"command {command!r} not found on PATH")
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(MAX_LINE_BYTES, loop),
                executable,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=full_env,
                cwd=cwd,
                start_new_session=True,  # its own process group: we can signal all it spawns
                preexec_fn=_death_signal(),
            )
        except OSError as exc:
            raise SpawnError(f"cannot start {command!r}: {exc.strerror or exc}") from exc
        process = asyncio.subprocess.Process(transport, protocol, loop)
        if groups is not None:
            groups.add(process.pid)
        link = cls(
            process=process,
            protocol=protocol,
            stderr=stderr,
            grace_seconds=grace_seconds,
            pid=process.pid,
            groups=groups,
        )
        link._tasks.append(asyncio.create_task(link._read_stderr(), name=f"stderr-{process.pid}"))
        link._tasks.append(asyncio.create_task(link._watch_exit(), name=f"exit-{process.pid}"))
        return link

    @property
    def closed_reason(self) -> str | None:
        return self._reason

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if self._closed.is_set() or stdin is None or stdin.is_closing():
            raise LinkClosed(self._reason or "process stdin is closed")
        data = jsontext.dumps(message) + b"\n"
        async with self._write_lock:
            try:
                stdin.write(data)
                await stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise LinkClosed(self._reason or f"cannot write to the process: {exc}") from exc

    async def receive(self) -> Received:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            line = await self._readline(stdout)
            text = line.strip()
            if not text:
                continue
            try:
                message = jsontext.loads(text)
            except ValueError:
                self.stderr.append("[mcpd] not JSON on stdout: " + text[:200].decode(errors="replace"))
                continue
            if isinstance(message, dict) and message.get("jsonrpc") == "2.0":
                return message, None  # nothing on a pipe says which request a message belongs to
            self.stderr.append("[mcpd] not JSON-RPC on stdout: " + text[:200].decode(errors="replace"))

    async def _readline(self, stdout: asyncio.StreamReader) -> bytes:
        """One stdout line; LinkClosed once the child is gone (even if a grandchild keeps the pipe)."""
        if self._closed.is_set():
            raise LinkClosed(self._reason or "process exited")
        reading = asyncio.ensure_future(stdout.readline())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({reading, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not reading.done():
                reading.cancel()
        if not reading.done() or reading.cancelled():
            raise LinkClosed(self._reason or "process exited")
        try:
            line = reading.result()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            self._reason = self._reason or f"protocol error: a stdout line longer than {MAX_LINE_BYTES} bytes"
            self._closed.set()
            raise LinkClosed(self._reason) from exc
        if not line:
            await self._settle()
            raise LinkClosed(self._reason or "process closed stdout")
        return line

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not line:
                return
            self.stderr.append(line.rstrip(b"\r\n").decode(errors="replace"))

    async def _watch_exit(self) -> None:
        """The child leaving is the link ending; what it left in its group goes with it."""
        await self.protocol.exited.wait()
        code = self.process.returncode
        self._reason = self._reason or (exit_reason(code) if code is not None else "process exited")
        self._kill_group(signal.SIGKILL)
        self._closed.set()

    async def _settle(self) -> None:
        """stdout ended: give the exit a moment to be seen, so the reason names the exit code."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.protocol.exited.wait()
        code = self.process.returncode
        self._reason = self._reason or (exit_reason(code) if code is not None else "process closed stdout")

    def _kill_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group now, where a graceful `close` cannot be awaited."""
        if self.process.returncode is None:
            self._kill_group(signal.SIGKILL)

    async def close(self) -> None:
        """Terminate the whole process group and reap the child. Idempotent, and complete even when
        the caller is cancelled part-way (the process group is always SIGKILLed)."""
        self._reason = self._reason or "stopped"
        try:
            if self.process.returncode is None:
                self._kill_group(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.grace_seconds):
                        await self.protocol.exited.wait()
        finally:
            self._kill_group(signal.SIGKILL)  # the child if it ignored SIGTERM, and its stragglers
            if self.groups is not None:
                self.groups.remove(self.process.pid)
            self._closed.set()
            for task in self._tasks:
                task.cancel()
            transport = getattr(self.process, "_transport", None)
            if transport is not None:
                transport.close()  # closes the pipes; the child watcher reaps the (killed) child
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.protocol.exited.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def describe_exception(exc: BaseException) -> str:
    """One line for an exception, looking inside exception groups."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe_exception(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
