"""Server leases (mcpd/leases.py) on a real PostgreSQL database, with several `Leases` in one process
standing for mcpd replicas: one holder per server under a race, takeover after the holder stops
renewing, fencing before the lease can end when the database is unreachable, release on stop."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mcpctl.core.crypto import SecretCipher
from mcpctl.mcpd.leases import Leases
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.supervisor.supervisor import Supervisor
from mcpctl.storage import tables
from mcpctl.storage.database import Database
from tests.conftest import PG_HOST, create_pg_database, drop_pg_database
from tests.processes import pid_alive

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mcp_fixture_server.py"

pytestmark = pytest.mark.anyio
# renewals every 1.33 s, fenced 1 s before the end: one slow renewal on a loaded machine is no lapse
LEASE = 4.0


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    name = await create_pg_database()
    database = Database(f"postgresql+asyncpg://postgres@{PG_HOST}/{name}")
    try:
        async with database.write() as session:
            for server in ("s1", "s2", "s3", "s4"):
                session.add(tables.Server(name=server, transport="stdio", spec={}))
        yield database
    finally:
        await database.dispose()
        await drop_pg_database(name)


class Replica:
    """One replica's leases, with what it was told."""

    def __init__(self, db: Database, name: str):
        self.lost: list[tuple[float, list[str]]] = []
        self.leases = Leases(db, name, f"http://{name}", LEASE, on_change=lambda: None, on_lost=self._on_lost)

    async def _on_lost(self, names: list[str]) -> None:
        self.lost.append((time.monotonic(), names))

    def held(self) -> set[str]:
        return {name for name in self.leases.held if self.leases.holds(name)}


async def _until(check: Any, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_each_server_has_one_holder_and_the_replicas_share(db: Database) -> None:
    replicas = [Replica(db, f"r{i}") for i in range(3)]
    await asyncio.gather(*(r.leases.start() for r in replicas))
    try:
        await _until(lambda: sum(len(r.held()) for r in replicas) == 4, 10)
        for _ in range(10):  # and so it stays, renewal after renewal
            held = [r.held() for r in replicas]
            assert sum(len(h) for h in held) == 4
            assert set().union(*held) == {"s1", "s2", "s3", "s4"}
            await asyncio.sleep(LEASE / 5)
        async with db.read() as session:
            holders = (await session.execute(sa.text("SELECT holder FROM server_leases"))).scalars().all()
        assert sorted(holders) == sorted(r.leases.replica_id for r in replicas for _ in r.held())
    finally:
        for r in replicas:
            await r.leases.stop_renewing()
            await r.leases.release()


async def test_a_replica_that_stops_renewing_is_replaced_after_the_lease(db: Database) -> None:
    first, second = Replica(db, "first"), Replica(db, "second")
    await first.leases.start()
    assert first.held() == {"s1", "s2", "s3", "s4"}
    await second.leases.start()
    try:
        for task in first.leases._tasks:  # "SIGKILL": no renewal, no release, no watchdog
            task.cancel()
        died = time.monotonic()
        took = await _until(lambda: second.held() == {"s1", "s2", "s3", "s4"}, LEASE * 3)
        assert took <= LEASE + 0.5
        assert time.monotonic() - died >= LEASE - (LEASE / 3) - 0.1  # not before the lease could end
    finally:
        await second.leases.stop_renewing()
        await second.leases.release()


async def test_a_holder_cut_off_from_the_database_fences_before_its_lease_ends(db: Database) -> None:
    holder, taker = Replica(db, "holder"), Replica(db, "taker")
    await holder.leases.start()
    assert holder.held() == {"s1", "s2", "s3", "s4"}

    @contextlib.asynccontextmanager
    async def unreachable() -> AsyncIterator[Any]:
        raise OSError("the database is unreachable")
        yield  # pragma: no cover

    holder.leases.db = type("Down", (), {"write": unreachable, "read": unreachable})()  # type: ignore[assignment]
    cut = time.monotonic()
    await taker.leases.start()
    try:
        await _until(lambda: holder.lost, LEASE * 2)
        fenced_at = holder.lost[0][0]
        await _until(lambda: taker.held() == {"s1", "s2", "s3", "s4"}, LEASE * 3)
        taken_at = time.monotonic()
        assert sorted(n for _, names in holder.lost for n in names) == ["s1", "s2", "s3", "s4"]
        assert holder.held() == set()
        assert fenced_at < taken_at  # killed before anyone could start them
        assert fenced_at - cut < LEASE
    finally:
        await holder.leases.stop_renewing()
        await holder.leases.release()
        await taker.leases.stop_renewing()
        await taker.leases.release()


async def test_release_hands_over_at_once(db: Database) -> None:
    first, second = Replica(db, "first"), Replica(db, "second")
    await first.leases.start()
    await second.leases.start()
    try:
        assert first.held() == {"s1", "s2", "s3", "s4"} and second.held() == set()
        await first.leases.stop_renewing()
        await first.leases.release()
        second.leases.poke()
        took = await _until(lambda: second.held() == {"s1", "s2", "s3", "s4"}, LEASE * 2)
        assert took < LEASE / 2
    finally:
        await second.leases.stop_renewing()
        await second.leases.release()


async def test_a_deleted_server_is_dropped_without_fencing(db: Database) -> None:
    replica = Replica(db, "only")
    await replica.leases.start()
    try:
        async with db.write() as session:
            await session.execute(sa.delete(tables.Server).where(tables.Server.name == "s1"))
        await _until(lambda: "s1" not in replica.held(), LEASE * 2)
        assert replica.lost == []
        assert replica.held() == {"s2", "s3", "s4"}
    finally:
        await replica.leases.stop_renewing()
        await replica.leases.release()


async def test_a_supervisor_cut_off_from_the_database_kills_its_instances_before_the_lease_ends(
    db: Database, tmp_path: Path
) -> None:
    """The whole chain on one mcpd: a stdio instance runs while its lease is held; when the database
    goes away, the watchdog SIGKILLs the process before PostgreSQL would let another replica take it."""
    async with db.write() as session:
        await session.execute(sa.delete(tables.Server))
        session.add(
            tables.Server(
                name="fx", transport="stdio", spec={"command": sys.executable, "args": [str(FIXTURE)]}
            )
        )
    settings = Settings(data_dir=tmp_path, database_url=db.url, lease_seconds=LEASE, stop_grace_seconds=30)
    supervisor = Supervisor(db, SecretCipher(SecretCipher.generate_key()), settings)
    await supervisor.start()
    try:
        assert supervisor.leases is not None
        await _until(lambda: any(r.ready for r in supervisor.instances()), 30)
        (replica,) = supervisor.instances()
        pid = replica.pid
        assert pid is not None and pid_alive(pid)
        async with db.read() as session:
            expires = (await session.execute(sa.text("SELECT expires_at FROM server_leases"))).scalar_one()

        @contextlib.asynccontextmanager
        async def unreachable() -> AsyncIterator[Any]:
            raise OSError("the database is unreachable")
            yield  # pragma: no cover

        supervisor.leases.db = type("Down", (), {"write": unreachable, "read": unreachable})()  # type: ignore[assignment]
        await _until(lambda: not pid_alive(pid), LEASE * 2)  # killed despite a 30 s stop grace
        async with db.read() as session:
            still_valid = (await session.execute(sa.text("SELECT :e > now()"), {"e": expires})).scalar_one()
        assert still_valid, "the process outlived the lease"
        assert supervisor.instances() == []
    finally:
        await supervisor.stop()
