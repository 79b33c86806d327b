"""The supervisor: what runs follows what the database says (level-triggered, like a controller).

`reconcile()` reads every server (with its secretRefs resolved) and starts, restarts, scales or
stops runtimes to match. It runs at start, whenever this mcpd changes a server or a secret
(`poke()`), and every `reconcile_interval_seconds` to catch changes made elsewhere. `stop()` ends
every instance (process groups terminated and reaped) before mcpd exits.

On PostgreSQL several mcpd replicas may share the database: then a server runs only on the replica
that holds its lease (mcpd/leases.py); a lease that ends unrenewed kills its instances at once
(`fence`), and a replica that stops gives its leases back after its instances have stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from mcpctl.core.crypto import SecretCipher
from mcpctl.mcpd.leases import Leases, default_replica_id
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.supervisor.groups import GroupLedger
from mcpctl.mcpd.supervisor.instance import HealthConfig, Replica, ServerConfig, SupervisorTuning
from mcpctl.mcpd.supervisor.prelaunch import PlanWriter, Prelaunched
from mcpctl.mcpd.supervisor.runtime import ServerRuntime
from mcpctl.storage import tables
from mcpctl.storage.database import Database

logger = logging.getLogger(__name__)
# How long a listener may take to take one upstream notification (a client that does not read).
DELIVERY_SECONDS = 5.0

ServerListener = Callable[[str, dict[str, Any]], Awaitable[None]]


class Supervisor:
    def __init__(
        self, db: Database, cipher: SecretCipher, settings: Settings, prelaunched: Prelaunched | None = None
    ):
        """`prelaunched`: the instances mcpd spawned ahead from the launch plan (prelaunch.py),
        taken by the first reconcile where the database still says so."""
        self.db = db
        self.cipher = cipher
        self.settings = settings
        self.tuning = SupervisorTuning(
            stop_grace_seconds=settings.stop_grace_seconds,
            backoff_initial_seconds=settings.backoff_initial_seconds,
            backoff_max_seconds=settings.backoff_max_seconds,
            backoff_reset_seconds=settings.backoff_reset_seconds,
            process_groups=prelaunched.groups if prelaunched is not None else GroupLedger(settings.data_dir),
            starts=asyncio.Semaphore(settings.max_concurrent_starts or 2 * (os.cpu_count() or 1)),
        )
        self.prelaunched = prelaunched
        self.runtimes: dict[str, ServerRuntime] = {}
        # Who hears every server's notifications that belong to no request (the project endpoint).
        self.listeners: list[ServerListener] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self.leases: Leases | None = None
        if db.dialect == "postgresql":
            self.leases = Leases(
                db,
                settings.replica_id or default_replica_id(),
                settings.resolved_advertise_url,
                settings.lease_seconds,
                on_change=self.poke,
                on_lost=self.fence,
            )
        # what runs, for the next mcpd to spawn ahead; not with leases (this replica's share is
        # not known before they are held)
        self._plan = PlanWriter(settings.data_dir, settings.resolved_database_url, cipher)
        self._closing_prelaunched: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """End what a killed predecessor left running, then run what the database says."""
        if self.tuning.process_groups is not None:
            self.tuning.process_groups.reap_leftovers()  # done already when spawned ahead
        if self.leases is not None:
            self._plan.remove()
            await self.leases.start()
        try:
            await self.reconcile()
        finally:
            # in the background: a leftover that ignores the end of its stdin would hold startup
            # for the stop grace period
            if self.prelaunched is not None:
                prelaunched, self.prelaunched = self.prelaunched, None
                self._closing_prelaunched = asyncio.create_task(
                    prelaunched.close_rest(), name="close-prelaunched"
                )
        self._task = asyncio.create_task(self._loop(), name="supervisor")

    async def close_prelaunched(self) -> None:
        """End the instances spawned ahead that the first reconcile did not take (also when it
        never ran), and wait until they have ended."""
        if self.prelaunched is not None:
            prelaunched, self.prelaunched = self.prelaunched, None
            await prelaunched.close_rest()
        if self._closing_prelaunched is not None:
            await self._closing_prelaunched

    async def launched(self, timeout: float) -> None:
        """Until every instance started so far has spawned its process (or connected, or failed
        to), `timeout` seconds at most. mcpd's startup waits here before its last, CPU-bound steps
        (the project endpoint's gateway, ~0.2 s), so that they overlap the upstreams' own start."""
        waits = [
            asyncio.ensure_future(replica.launched.wait())
            for runtime in self.runtimes.values()
            for replica in runtime.replicas
        ]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for waiting in pending:
            waiting.cancel()

    async def stop(self) -> None:
        self._stopping = True
        if self.leases is not None:
            await self.leases.stop_renewing()  # the watchdog still fences if stopping overruns a lease
        async with self._lock:  # a reconcile in progress finishes first: nothing is left half-stopped
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            # left in place while they stop: a lease that ends meanwhile still kills them (fence)
            runtimes = dict(self.runtimes)
            await asyncio.gather(*(rt.stop() for rt in runtimes.values()))
            self.runtimes = {}
        await self.close_prelaunched()
        if self.leases is not None:
            await self.leases.release()  # only now: another replica may start them at once
        if runtimes:
            logger.info("supervisor stopped %d server(s)", len(runtimes))

    def poke(self) -> None:
        """Reconcile soon (after a change this mcpd just committed)."""
        self._poked.set()
        if self.leases is not None:
            self.leases.poke()

    def holds(self, name: str) -> bool:
        """Whether this mcpd supervises the server (always, without leases)."""
        return self.leases is None or self.leases.holds(name)

    async def fence(self, names: list[str]) -> None:
        """This mcpd's leases on these servers ended: kill their instances now (SIGKILL, no grace),
        without waiting for a reconcile in progress."""
        runtimes = [rt for name in names if (rt := self.runtimes.pop(name, None)) is not None]
        await asyncio.gather(*(rt.stop(hard=True) for rt in runtimes))

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.reconcile_interval_seconds):
                    await self._poked.wait()
            self._poked.clear()
            try:
                await self.reconcile()
            except Exception:  # boundary: a failed pass is logged and retried on the next one
                logger.exception("supervisor: reconcile failed")

    # ---- reconcile -------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        desired = await self.load()
        async with self._lock:
            if self._stopping:
                return
            removed = [self.runtimes.pop(n) for n in list(self.runtimes) if n not in desired]
            for gone in removed:
                logger.info("supervisor: server %s removed; stopping its instances", gone.name)
            # a lease that ended (the watchdog is about to say so): killed, no grace to overrun it
            unheld = [self.runtimes.pop(n) for n in list(self.runtimes) if not self.holds(n)]
            await asyncio.gather(*(gone.stop() for gone in removed), *(rt.stop(hard=True) for rt in unheld))
            for name, config in desired.items():
                current = self.runtimes.get(name)
                if not self.holds(name):
                    continue  # another replica supervises it (or none may yet)
                if current is None:
                    spawned = self.prelaunched.take_all(config) if self.prelaunched is not None else {}
                    runtime = self.runtimes[name] = ServerRuntime(config, self.tuning, spawned)
                    runtime.subscribers.add(self._relay_to_listeners(name))
                    runtime.start()
                elif current.config != config:
                    await current.apply(config)
            if self.leases is None:
                self._plan.write(desired.values())

    def _relay_to_listeners(self, name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        """An upstream's notifications outside requests, handed to the listeners (the project
        endpoint's sessions, the data-plane links) without holding up the connection's reader: a
        client that does not read its stream must never stall the upstream for everyone else."""

        async def relay(message: dict[str, Any]) -> None:
            for listener in list(self.listeners):
                task = asyncio.create_task(_deliver(listener, name, message))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

        return relay

    async def load(self) -> dict[str, ServerConfig]:
        async with self.db.read() as session:
            servers = (await session.execute(sa.select(tables.Server).order_by(tables.Server.name))).scalars()
            secrets_rows = (await session.execute(sa.select(tables.Secret))).scalars()
            rows = list(servers)
            secrets = {row.name: row.data_encrypted for row in secrets_rows}
        decrypted: dict[str, dict[str, str] | None] = {}

        def secret(name: str) -> dict[str, str] | None:
            if name not in decrypted:
                blob = secrets.get(name)
                try:
                    decrypted[name] = None if blob is None else json.loads(self.cipher.decrypt(blob))
                except Exception:  # boundary: one unreadable secret fails its servers, not the supervisor
                    logger.error("supervisor: secret %s cannot be decrypted (wrong MCPD_SECRET_KEY?)", name)
                    decrypted[name] = None
            return decrypted[name]

        return {row.name: self.config_for(row, secret) for row in rows}

    def config_for(self, row: tables.Server, secret: Any) -> ServerConfig:
        spec: dict[str, Any] = row.spec or {}
        problems: list[str] = []

        def resolve(values: dict[str, Any]) -> dict[str, str]:
            out = {}
            for key, value in values.items():
                if isinstance(value, dict) and "secretRef" in value:
                    ref = value["secretRef"]
                    data = secret(ref["name"])
                    if data is None or ref["key"] not in data:
                        problems.append(f"secretRef {ref['name']}/{ref['key']} for {key} does not resolve")
                        continue
                    out[key] = data[ref["key"]]
                else:
                    out[key] = str(value)
            return out

        env = resolve(spec.get("env") or {})
        headers = resolve(spec.get("headers") or {})
        hc = spec.get("healthCheck") or {}
        s = self.settings
        health = HealthConfig(
            tool=hc.get("tool"),
            arguments=hc.get("arguments") or {},
            interval_seconds=hc.get("intervalSeconds", s.probe_interval_seconds),
            timeout_seconds=hc.get("timeoutSeconds", s.probe_timeout_seconds),
            failure_threshold=hc.get("failureThreshold", s.probe_failure_threshold),
        )
        timeouts = spec.get("timeouts") or {}
        return ServerConfig(
            name=row.name,
            transport=row.transport,
            command=spec.get("command"),
            args=tuple(spec.get("args") or ()),
            env=env,
            cwd=spec.get("cwd"),
            url=spec.get("url"),
            headers=headers,
            replicas=int(spec.get("replicas", 1)) if row.transport == "stdio" else 1,
            health=health,
            init_seconds=float(timeouts.get("initSeconds", 30)),
            call_seconds=float(timeouts.get("callSeconds", 120)),
            labels=dict(row.labels or {}),
            tools_allow=tuple((spec.get("tools") or {}).get("allow") or ()),
            tools_deny=tuple((spec.get("tools") or {}).get("deny") or ()),
            error="; ".join(problems) or None,
        )

    # ---- queries ---------------------------------------------------------------------------------

    def runtime(self, name: str) -> ServerRuntime | None:
        return self.runtimes.get(name)

    def instances(self) -> list[Replica]:
        return [r for name in sorted(self.runtimes) for r in self.runtimes[name].replicas]

    def instance(self, name: str) -> Replica | None:
        return next((r for r in self.instances() if r.name == name), None)


async def _deliver(listener: ServerListener, name: str, message: dict[str, Any]) -> None:
    try:
        async with asyncio.timeout(DELIVERY_SECONDS):
            await listener(name, message)
    except TimeoutError:
        logger.warning(
            "a notification of server %s was not taken within %gs; dropped", name, DELIVERY_SECONDS
        )
    except Exception:  # boundary: one listener's failure is not the upstream's
        logger.exception("delivering a notification of server %s failed", name)
