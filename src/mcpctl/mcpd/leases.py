"""Server leases: several mcpd replicas on one PostgreSQL database, exactly one supervising each server.

Each server has a row in `server_leases` (created free by whichever replica sees the server first).
A replica supervises a server only while it holds that row: `holder` is its replica id, `expires_at`
lies in the future by the database's clock. Every third of `lease_seconds` the holder renews all its
rows in one statement; free or expired rows are taken with a conditional UPDATE (`expires_at <=
now()`), which PostgreSQL re-checks under the row lock, so of two replicas racing for a row one
wins. Every new holder bumps `generation`.

Safety (no two replicas run a server's instances at once). The holder notes its monotonic clock
*before* sending a renewal; the database sets `expires_at = now() + lease` *after* that, so the
lease ends no earlier than `sent + lease` in real time. The holder's deadline is `sent + lease -
margin`: by then it has SIGKILLed that server's process groups (`fence`), renewal or not — the
watchdog does not wait for a database call that hangs. A taker takes the row only when the database
says it has expired, i.e. after the holder's deadline, and starts processes only after its UPDATE
committed. What this assumes: the holder's monotonic clock runs at the database clock's rate (to well
within `margin`), and its event loop is not stalled for longer than `margin`.

Only PostgreSQL: SQLite means one mcpd, which supervises everything (no leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.storage.database import Database

logger = logging.getLogger(__name__)

HOLDER_CACHE_SECONDS = 1.0
_INTERVAL = "make_interval(secs => :secs)"

_RENEW = sa.text(
    f"UPDATE server_leases SET expires_at = now() + {_INTERVAL} "
    "WHERE holder = :me AND expires_at > now() RETURNING server_id, generation"
)
_ADD_MISSING = sa.text(
    "INSERT INTO server_leases (server_id, holder, holder_url, expires_at, generation) "
    "SELECT id, NULL, NULL, now(), 0 FROM servers ON CONFLICT (server_id) DO NOTHING"
)
_CENSUS = sa.text(
    "SELECT count(*) AS total, "
    "count(DISTINCT holder) FILTER (WHERE expires_at > now() AND holder <> :me) AS others, "
    "count(*) FILTER (WHERE expires_at > now() AND holder = :me) AS mine, "
    "count(*) FILTER (WHERE expires_at <= now()) AS free, "
    "EXTRACT(EPOCH FROM (min(expires_at) FILTER (WHERE expires_at > now() AND holder <> :me) - now())) "
    "AS next_free FROM server_leases"
)
_ACQUIRE = sa.text(
    "UPDATE server_leases SET holder = :me, holder_url = :url, "
    f"expires_at = now() + {_INTERVAL}, generation = generation + 1 "
    "WHERE server_id IN (SELECT server_id FROM server_leases WHERE expires_at <= now() "
    "ORDER BY server_id LIMIT :n FOR UPDATE SKIP LOCKED) AND expires_at <= now() "
    "RETURNING server_id, generation"
)
_NAMES = sa.text("SELECT id, name FROM servers WHERE id = ANY(:ids)")
_RELEASE = sa.text(
    "UPDATE server_leases SET holder = NULL, holder_url = NULL, expires_at = now() WHERE holder = :me"
)
_OTHERS = sa.text(
    "SELECT DISTINCT holder, holder_url FROM server_leases "
    "WHERE expires_at > now() AND holder <> :me AND holder_url IS NOT NULL ORDER BY holder"
)
_HOLDER = sa.text(
    "SELECT l.holder, l.holder_url FROM server_leases l JOIN servers s ON s.id = l.server_id "
    "WHERE s.name = :name AND l.expires_at > now()"
)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Held:
    server_id: str
    generation: int
    deadline: float  # monotonic: this replica's instances of the server are killed by then


@dataclass(frozen=True)
class Holder:
    replica: str
    url: str


class Leases:
    """This replica's leases: acquires, renews, fences (`on_lost`) and releases them.

    `on_change()` is called when the set of held servers grew or a server was deleted (the
    supervisor reconciles); `on_lost(names)` when leases end without the servers being deleted (the
    supervisor kills their instances at once)."""

    def __init__(
        self,
        db: Database,
        replica_id: str,
        url: str,
        lease_seconds: float,
        *,
        on_change: Callable[[], None],
        on_lost: Callable[[list[str]], Awaitable[None]],
    ):
        self.db, self.replica_id, self.url, self.lease_seconds = db, replica_id, url, lease_seconds
        self.renew_seconds = lease_seconds / 3
        self.margin = max(1.0, lease_seconds / 5)  # stop this long before the lease could end
        self.held: dict[str, Held] = {}  # server name → lease
        self._on_change, self._on_lost = on_change, on_lost
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._holders: dict[str, tuple[float, Holder | None]] = {}

    # ---- what the supervisor and the planes ask ------------------------------------------------------

    def holds(self, name: str) -> bool:
        held = self.held.get(name)
        return held is not None and time.monotonic() < held.deadline

    async def holder(self, name: str) -> Holder | None:
        """The replica that holds the server's lease now (cached for a second), None when none does."""
        now = time.monotonic()
        cached = self._holders.get(name)
        if cached is not None and now - cached[0] < HOLDER_CACHE_SECONDS:
            return cached[1]
        async with self.db.read() as session:
            row = (await session.execute(_HOLDER, {"name": name})).first()
        found = Holder(str(row.holder), str(row.holder_url)) if row is not None and row.holder_url else None
        if len(self._holders) > 10_000:
            self._holders.clear()
        self._holders[name] = (now, found)
        return found

    async def others(self) -> list[Holder]:
        """The other replicas that hold a lease now."""
        async with self.db.read() as session:
            rows = await session.execute(_OTHERS, {"me": self.replica_id})
            return [Holder(str(r.holder), str(r.holder_url)) for r in rows]

    def known_holder(self, name: str) -> Holder | None:
        """The holder looked up within the last lease (no database work), if any."""
        cached = self._holders.get(name)
        if cached is None or time.monotonic() - cached[0] > self.lease_seconds:
            return None
        return cached[1]

    def poke(self) -> None:
        """Look for new servers now (one was just created here)."""
        self._wake.set()

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take what is free before the first reconcile, then keep at it."""
        await self._pass()
        self._tasks = [
            asyncio.create_task(self._loop(), name="leases"),
            asyncio.create_task(self._watchdog(), name="lease watchdog"),
        ]

    async def stop_renewing(self) -> None:
        """Renew no more (mcpd is stopping); the watchdog still kills what outlives its lease."""
        await _cancel(self._tasks[:1])

    async def release(self) -> None:
        """Give every lease back (the instances are stopped): another replica takes over at once."""
        await _cancel(self._tasks)
        self._tasks = []
        if not self.held:
            return
        self.held.clear()
        try:
            async with asyncio.timeout(5.0), self.db.write() as session:
                await session.execute(_RELEASE, {"me": self.replica_id})
        except Exception:  # boundary: they expire on their own within lease_seconds
            logger.warning("could not release the server leases; they expire on their own", exc_info=True)

    # ---- the loops -----------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            wait = await self._pass()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()

    async def _watchdog(self) -> None:
        """Kill the instances of every lease whose deadline passed, whatever the database does."""
        while True:
            now = time.monotonic()
            ended = [name for name, held in self.held.items() if held.deadline <= now]
            for name in ended:
                del self.held[name]
            if ended:
                logger.error(
                    "lease on %s not renewed in time: killing its instances", ", ".join(sorted(ended))
                )
                await self._on_lost(ended)
            soonest = min((held.deadline for held in self.held.values()), default=now + 1.0)
            await asyncio.sleep(min(1.0, max(0.05, soonest - time.monotonic())))

    async def _pass(self) -> float:
        """Renew, then take free leases; the seconds until the next pass."""
        try:
            async with asyncio.timeout(self.renew_seconds):
                return await self._renew_and_acquire()
        except Exception:  # boundary: the database is away; the watchdog fences in time
            logger.warning("server leases: renewal failed; retrying", exc_info=True)
            return min(1.0, self.renew_seconds)

    async def _renew_and_acquire(self) -> float:
        params = {"me": self.replica_id, "url": self.url, "secs": float(self.lease_seconds)}
        sent = time.monotonic()
        async with self.db.write() as session:
            renewed = {str(r.server_id): int(r.generation) for r in await session.execute(_RENEW, params)}
        await self._after_renewal(renewed, sent)
        async with self.db.write() as session:
            await session.execute(_ADD_MISSING)
        sent = time.monotonic()
        async with self.db.write() as session:
            census = (await session.execute(_CENSUS, params)).one()
            share = math.ceil(census.total / (census.others + 1))
            wanted = min(share - census.mine, census.free)
            taken: dict[str, int] = {}
            if wanted > 0:
                rows = await session.execute(_ACQUIRE, {**params, "n": wanted})
                taken = {str(r.server_id): int(r.generation) for r in rows}
            names = await _names(session, taken) if taken else {}
        deadline = sent + self.lease_seconds - self.margin
        for server_id, generation in taken.items():
            if server_id in names:
                self.held[names[server_id]] = Held(server_id, generation, deadline)
        if names:
            logger.info("replica %s now supervises %s", self.replica_id, ", ".join(sorted(names.values())))
            self._on_change()
        wait = self.renew_seconds
        if census.next_free is not None:  # wake just after another's lease ends: a quick takeover
            wait = min(wait, max(0.05, float(census.next_free) + 0.05))
        return wait

    async def _after_renewal(self, renewed: dict[str, int], sent: float) -> None:
        lost: list[str] = []
        for name, held in list(self.held.items()):
            if renewed.get(held.server_id) == held.generation:
                held.deadline = sent + self.lease_seconds - self.margin
            else:
                del self.held[name]
                lost.append(name)
        if not lost:
            return
        async with self.db.read() as session:
            existing = set(
                (await session.execute(sa.text("SELECT name FROM servers WHERE name = ANY(:n)"), {"n": lost}))
                .scalars()
                .all()
            )
        gone = [name for name in lost if name not in existing]
        if gone:  # deleted: nobody can take them; the supervisor stops them the usual way
            self._on_change()
        taken = [name for name in lost if name in existing]
        if taken:
            logger.error("lease on %s lost to another replica: killing its instances", ", ".join(taken))
            await self._on_lost(taken)


async def _names(session: AsyncSession, ids: dict[str, int]) -> dict[str, str]:
    rows = await session.execute(_NAMES, {"ids": list(ids)})
    return {str(r.id): str(r.name) for r in rows}


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
