"""The audit spool (DESIGN §5) against a real, migrated database (SQLite and PostgreSQL): an event
queued before a crash is stored on the next start, once, even when it had been stored just before
the crash (ON CONFLICT DO NOTHING on both)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from mcpctl.core.policy import Principal
from mcpctl.mcpd.gateway import EmbeddedPlane
from mcpctl.mcplocal.audit import AuditQueue
from mcpctl.mcplocal.ports import AuditRecord
from mcpctl.mcplocal.spool import AuditSpool
from mcpctl.storage import tables
from mcpctl.storage.database import Database

pytestmark = pytest.mark.anyio

TOKEN = Principal(kind="token", token_name="t", token_sha="a" * 64, project="p", owner="o@example.com")


def _record(n: int) -> AuditRecord:
    return AuditRecord(
        "tool_call", TOKEN, "p", "fx", f"echo-{n}", "ok", 1, "session", f"req-{n}", "127.0.0.1"
    )


async def _stored(db: Database) -> list[str]:
    async with db.read() as session:
        rows = await session.execute(sa.select(tables.AuditEvent.request_id))
        return sorted(str(r) for r in rows.scalars())


async def _database(url: str) -> Database:
    db = Database(url)
    await db.migrate()
    return db


async def test_events_queued_before_a_crash_are_stored_at_the_next_start(
    tmp_path: Path, database_url: str
) -> None:
    db = await _database(database_url)
    plane = EmbeddedPlane(db, None)
    crashed = AuditQueue(plane.audit, flush_seconds=60, spool=AuditSpool(tmp_path / "spool"))
    crashed.start()
    for n in range(3):
        crashed.put(_record(n))
    assert await _stored(db) == []  # nothing written yet: the flusher waits a minute
    # the process dies here: no close(), the in-memory queue is gone
    assert crashed._task is not None
    crashed._task.cancel()

    restarted = AuditQueue(plane.audit, flush_seconds=0.05, spool=AuditSpool(tmp_path / "spool"))
    restarted.start()
    with anyio.fail_after(10):
        while len(await _stored(db)) < 3:
            await anyio.sleep(0.05)
    await restarted.close()
    assert await _stored(db) == ["req-0", "req-1", "req-2"]
    assert list((tmp_path / "spool").glob("*.jsonl")) == []  # stored events leave the spool
    await db.dispose()


async def test_an_event_stored_just_before_a_crash_is_not_stored_twice(
    tmp_path: Path, database_url: str
) -> None:
    db = await _database(database_url)
    plane = EmbeddedPlane(db, None)
    spool = AuditSpool(tmp_path / "spool")
    spool.open()
    records = [_record(n) for n in range(3)]
    for record in records:
        spool.append(record)
    await plane.audit(records[:2])  # committed, but the process died before the spool was trimmed
    await spool.close()

    restarted = AuditQueue(plane.audit, flush_seconds=0.05, spool=AuditSpool(tmp_path / "spool"))
    restarted.start()
    await restarted.close()
    assert await _stored(db) == ["req-0", "req-1", "req-2"]
    await db.dispose()


async def test_a_torn_last_line_is_skipped_and_the_rest_replayed(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool")
    spool.open()
    spool.append(_record(1))
    await spool.close()
    segment = next((tmp_path / "spool").glob("*.jsonl"))
    with segment.open("ab") as file:
        file.write(b'{"kind":"tool_ca')  # the crash hit mid-write
    again = AuditSpool(tmp_path / "spool")
    replayed = again.open()
    await again.close()
    assert [r.request_id for r in replayed] == ["req-1"]
    assert replayed[0].event_id and replayed[0].principal.token_sha == "a" * 64


async def test_answers_waiting_for_durability_share_one_fdatasync_and_see_their_events_synced(
    tmp_path: Path,
) -> None:
    spool = AuditSpool(tmp_path / "spool")
    spool.open()
    for n in range(50):
        spool.append(_record(n))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(20):  # twenty answers waiting at once
                tg.start_soon(spool.durable)
    assert spool.synced == spool.appended == 50
    spool.append(_record(50))
    assert spool.synced < spool.appended
    await spool.seal()  # sealing syncs too
    assert spool.synced == spool.appended
    await spool.close()
