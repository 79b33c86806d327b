"""One supervised replica of a server: start, initialize, probe, back off, restart, stop.

States: PENDING (not started yet) → STARTING (process spawned / connecting, initialize in flight) →
RUNNING; a crash, a failed initialize or an unhealthy verdict → BACKOFF (waiting 1 s, doubling to
60 s; back to 1 s after 5 minutes running) → STARTING again. FAILED is a start that cannot work
without a change (no such command, missing secret); it is retried on the same backoff, because the
fix (installing the command, creating the secret) happens outside mcpd. STOPPED is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from mcpctl.mcpd.supervisor.connection import Connection, Notify, UpstreamError
from mcpctl.mcpd.supervisor.groups import GroupLedger
from mcpctl.mcpd.supervisor.links import Link, SpawnError, StdioLink
from mcpctl.mcpd.supervisor.ring import LineRing
from mcpctl.mcpd.supervisor.sse_link import SseLink
from mcpctl.mcpd.supervisor.streamable import StreamableHttpLink

logger = logging.getLogger(__name__)

MAX_EVENTS = 50


@dataclass(frozen=True)
class HealthConfig:
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    interval_seconds: float = 15.0
    timeout_seconds: float = 10.0
    failure_threshold: int = 3


@dataclass(frozen=True)
class ServerConfig:
    """A server as the supervisor runs it: the spec with secretRefs resolved."""

    name: str
    transport: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    health: HealthConfig = field(default_factory=HealthConfig)
    init_seconds: float = 30.0
    call_seconds: float = 120.0
    labels: dict[str, str] = field(default_factory=dict)
    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    error: str | None = None  # why it cannot start as configured (e.g. a secret is missing)

    def launch_fingerprint(self) -> str:
        """Changes exactly when running replicas must be restarted to pick the change up."""
        launch = [
            self.transport,
            self.command,
            self.args,
            self.env,
            self.cwd,
            self.url,
            self.headers,
            self.error,
        ]
        return hashlib.sha256(json.dumps(launch, sort_keys=True, default=list).encode()).hexdigest()


@dataclass(frozen=True)
class SupervisorTuning:
    stop_grace_seconds: float = 5.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    backoff_reset_seconds: float = 300.0
    process_groups: GroupLedger | None = None  # records stdio groups for the next mcpd (groups.py)
    # stdio instances between spawn and initialize, at most (`max_concurrent_starts`): fifty servers
    # spawned at once on two cores each took longer than their initSeconds and were killed, again
    # and again (19 of 50 RUNNING after 300 s); in turns each starts at the speed of a free core
    starts: asyncio.Semaphore | None = None


@dataclass(frozen=True)
class Event:
    time: datetime
    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"time": _iso(self.time), "type": self.type, "message": self.message}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


class _Stopped(Exception):
    """The replica was stopped while it was starting."""


T = TypeVar("T")


class Replica:
    """One instance of a server, with its own supervision loop."""

    def __init__(
        self,
        config: ServerConfig,
        index: int,
        tuning: SupervisorTuning,
        *,
        on_notification: Notify,
        on_change: Callable[[], None],
        spawned: Link | None = None,
    ):
        """`spawned`: the link of this replica's first start, already open (spawned ahead)."""
        self.config = config
        self.index = index
        self.name = f"{config.name}-{index}"
        self.id = uuid.uuid4().hex
        self.created_at = now()
        self.updated_at = self.created_at
        self.tuning = tuning
        self.status = "PENDING"
        self.pid: int | None = None
        self.restarts = 0
        self.health = "unknown"
        self.last_probe_at: datetime | None = None
        self.started_at: datetime | None = None
        self.reason: str | None = None
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self.stderr = LineRing()
        self._spawned = spawned
        self.connection: Connection | None = None
        self._on_notification = on_notification
        self._on_change = on_change
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._planned = False
        self._hard = False
        self._task: asyncio.Task[None] | None = None
        # set once the first start has spawned its process (or connected, or failed to): mcpd's
        # startup waits for it so the upstream boots while mcpd finishes (Supervisor.launched)
        self.launched = asyncio.Event()

    # ---- observation -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return (
            self.status == "RUNNING" and self.connection is not None and self.connection.closed_reason is None
        )

    @property
    def inflight(self) -> int:
        return self.connection.inflight if self.connection is not None else 0

    def event(self, type_: str, message: str) -> None:
        self.events.append(Event(now(), type_, message))
        self.updated_at = now()
        log = logger.warning if type_ in ("exited", "failed", "probe-failed", "unhealthy") else logger.info
        log("instance %s: %s: %s", self.name, type_, message)

    def _set(self, status: str, reason: str | None = None) -> None:
        self.status = status
        if reason is not None:
            self.reason = reason
        self.updated_at = now()
        self._on_change()

    # ---- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"instance {self.name}")

    def restart(self, reason: str, *, planned: bool = False) -> None:
        """Restart soon. A planned restart (a changed spec) skips the backoff and is not counted."""
        self.event("restart-requested", reason)
        self._planned = self._planned or planned
        self._restart.set()

    async def stop(self, *, hard: bool = False) -> None:
        """Stop the replica; `hard`: its process group is SIGKILLed now, with no grace (its lease
        ended), also when a graceful stop is already waiting for it."""
        if hard:
            self._hard = True
            self._kill_group()
        self._stop.set()
        self._restart.set()
        if self._task is not None:
            # shielded: a caller that is cancelled while waiting must not cut the stop in half
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    def _kill_group(self) -> None:
        # the child is not reaped before its link is closed and pid cleared: the pid is still ours
        if self.pid is not None and self.config.transport == "stdio":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    # ---- the loop --------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.tuning.backoff_initial_seconds
        try:
            while not self._stop.is_set():
                try:
                    ran_for = await self._run_once()
                except Exception:  # boundary: a bug in one run is a crash of that run, not the end
                    logger.exception("instance %s: supervision error", self.name)
                    self.event("failed", "internal error in the supervisor (see mcpd's log)")
                    self._set("BACKOFF", "internal error in the supervisor")
                    ran_for = 0.0
                if self._stop.is_set():
                    break
                if self._planned:
                    self._planned = False
                    delay = self.tuning.backoff_initial_seconds
                    continue
                if ran_for >= self.tuning.backoff_reset_seconds:
                    delay = self.tuning.backoff_initial_seconds
                self.restarts += 1
                if self.status != "FAILED":
                    self._set("BACKOFF")
                self.event("backoff", f"restarting in {delay:g}s")
                self._restart.clear()
                await _wait_any((self._stop, self._restart), delay)  # a changed spec need not wait
                delay = min(delay * 2, self.tuning.backoff_max_seconds)
        finally:
            if self._spawned is not None:  # stopped before its first start took it
                await self._spawned.close()
                self._spawned = None
            self.launched.set()
            self.pid = None
            self._set("STOPPED")
            self.event("stopped", "instance stopped")

    async def _run_once(self) -> float:
        """Start, initialize and serve until the instance ends; the seconds it was RUNNING."""
        self._restart.clear()
        self._planned = False
        self._set("STARTING")
        config = self.config
        if config.error is not None:
            self.launched.set()
            self._set("FAILED", config.error)
            self.event("failed", config.error)
            return 0.0
        try:
            give_back = await self._turn_to_start(config)
        except _Stopped:
            self.launched.set()
            return 0.0
        try:
            link = await self._interruptible(self._open(config))
        except _Stopped:
            give_back()
            return 0.0
        except SpawnError as exc:
            give_back()
            self._set("FAILED", str(exc))
            self.event("failed", str(exc))
            return 0.0
        except BaseException:  # anything else (`_run` backs off and tries again): the turn is not kept
            give_back()
            raise
        finally:
            self.launched.set()
        self.pid = link.pid
        if self._hard:  # killed while it was being spawned
            self._kill_group()
        what = f"pid {link.pid}" if link.pid else f"connecting to {config.url}"
        self.event("restarted" if self.restarts else "started", what)
        connection = Connection(link, on_notification=self._on_notification, label=f"instance {self.name}")
        reader = asyncio.create_task(connection.run(), name=f"reader {self.name}")
        probe: asyncio.Task[None] | None = None
        running_since: datetime | None = None
        try:
            try:
                await self._interruptible(connection.initialize(config.init_seconds))
            except _Stopped:
                return 0.0
            except UpstreamError as exc:
                reason = f"initialize: {exc}"
                if connection.closed_reason is None:
                    self.event("failed", reason)
                self._set("BACKOFF", reason)
                return 0.0
            finally:
                give_back()
            self.connection = connection
            running_since = self.started_at = now()
            self._set("RUNNING", None)
            self.reason = None
            info = (connection.initialize_result or {}).get("serverInfo") or {}
            self.event("ready", f"initialized ({info.get('name', '?')} {info.get('version', '')})".strip())
            probe = asyncio.create_task(self._probe_loop(connection), name=f"probe {self.name}")
            restart = asyncio.create_task(self._restart.wait())
            await asyncio.wait({reader, restart}, return_when=asyncio.FIRST_COMPLETED)
            restart.cancel()
            return (now() - running_since).total_seconds()
        finally:
            self.connection = None
            if probe is not None:
                probe.cancel()
                await asyncio.wait({probe}, timeout=5.0)
            await link.close()
            await asyncio.gather(reader, return_exceptions=True)
            if self.health != "unhealthy":  # the verdict stays until a good probe; "healthy" does not
                self.health = "unknown"
            reason = connection.closed_reason or link.closed_reason or "stopped"
            if not self._stop.is_set():
                self.event("exited", reason)
                self._set(self.status if self.status in ("BACKOFF", "FAILED") else "BACKOFF", reason)
            self.pid = None

    async def _turn_to_start(self, config: ServerConfig) -> Callable[[], None]:
        """Wait for a turn to start, for a stdio instance not spawned ahead (`SupervisorTuning.starts`);
        what gives the turn back, once, when it is initialized or failed to be."""
        starts = self.tuning.starts
        if starts is None or config.transport != "stdio" or self._spawned is not None:
            return _no_turn
        await self._interruptible(starts.acquire())
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                starts.release()

        return give_back

    async def _interruptible(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work` unless the replica is stopped first. Either way nothing it started is left
        running: a link it opened after all is closed."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _abandon(task, hard=self._hard)
            raise
        finally:
            stop.cancel()
        if not task.done():
            await _abandon(task, hard=self._hard)
            raise _Stopped
        return task.result()

    async def _open(self, config: ServerConfig) -> Link:
        if self._spawned is not None:
            link, self._spawned = self._spawned, None
            if isinstance(link, StdioLink):
                self.stderr = link.stderr  # what it has said since it was spawned
            return link
        if config.transport == "stdio":
            assert config.command is not None
            return await StdioLink.open(
                config.command,
                list(config.args),
                config.env,
                config.cwd,
                stderr=self.stderr,
                grace_seconds=self.tuning.stop_grace_seconds,
                groups=self.tuning.process_groups,
            )
        assert config.url is not None
        http = (
            SseLink
            if urllib.parse.urlsplit(config.url).path.rstrip("/").endswith("/sse")
            else StreamableHttpLink
        )
        return await http.open(config.url, config.headers, connect_timeout=config.init_seconds)

    # ---- health ----------------------------------------------------------------------------------

    async def _probe_loop(self, connection: Connection) -> None:
        failures = 0
        while True:
            health = self.config.health
            problem = await self.probe(connection, health)
            self.last_probe_at = now()
            if problem is None:
                if self.health != "healthy":
                    self.event(
                        "probe-ok", "healthy" if failures == 0 else f"healthy again after {failures} failed"
                    )
                failures = 0
                self.health = "healthy"
            else:
                failures += 1
                self.event("probe-failed", f"{problem} ({failures}/{health.failure_threshold})")
                if failures >= health.failure_threshold:
                    self.health = "unhealthy"
                    self.event("unhealthy", f"{failures} consecutive probe failures; restarting")
                    self._restart.set()
                    return
                self.health = "degraded"
            self._on_change()
            await asyncio.sleep(health.interval_seconds)

    @staticmethod
    async def probe(connection: Connection, health: HealthConfig) -> str | None:
        """Run one probe through the same connection real traffic uses; None when it passed."""
        try:
            if health.tool:
                params = {"name": health.tool, "arguments": health.arguments}
                answer = await connection.request(
                    "tools/call", params, timeout=health.timeout_seconds, own=True
                )
            else:
                answer = await connection.request("tools/list", {}, timeout=health.timeout_seconds, own=True)
        except UpstreamError as exc:
            return str(exc)
        if "error" in answer:
            return f"error: {(answer['error'] or {}).get('message', 'unknown')}"
        if health.tool and (answer.get("result") or {}).get("isError"):
            return f"tool {health.tool!r} returned an error result"
        return None

    # ---- the API shape ---------------------------------------------------------------------------

    def to_object(self) -> dict[str, Any]:
        config = self.config
        spec: dict[str, Any] = {"server": config.name, "replica": self.index, "transport": config.transport}
        if config.transport == "stdio":
            spec["command"] = config.command
        else:
            spec["url"] = config.url
        status: dict[str, Any] = {
            "status": self.status,
            "pid": self.pid,
            "restarts": self.restarts,
            "healthStatus": self.health,
            "lastProbeAt": _iso(self.last_probe_at) if self.last_probe_at else None,
            "startedAt": _iso(self.started_at) if self.started_at and self.status == "RUNNING" else None,
            "reason": self.reason,
            "inflight": self.inflight,
            "events": [e.to_dict() for e in self.events],
        }
        return {
            "kind": "Instance",
            "metadata": {
                "name": self.name,
                "id": self.id,
                "labels": dict(config.labels),
                "createdAt": _iso(self.created_at),
                "updatedAt": _iso(self.updated_at),
            },
            "spec": spec,
            "status": status,
        }


def _no_turn() -> None:
    pass


async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    """Sleep `seconds`, or less if one of the events is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _abandon(task: asyncio.Future[Any], *, hard: bool = False) -> None:
    """Cancel `task` and wait for it; if it still produced a link, close that (`hard`: no grace)."""
    task.cancel()
    try:
        result = await asyncio.shield(task)
    except BaseException:  # cancelled or failed: nothing was produced
        return
    if isinstance(result, StdioLink | SseLink | StreamableHttpLink):
        if hard and isinstance(result, StdioLink):
            result.grace_seconds = 0.0
        await result.close()
