"""Database.migrate skips Alembic when the database is already at the scripts' heads (a cold start
on existing data imports no Alembic), and still migrates whatever is behind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from mcpctl.storage import database
from mcpctl.storage.database import Database, alembic_config, script_heads

pytestmark = pytest.mark.anyio


def test_the_heads_read_from_the_scripts_are_alembics() -> None:
    assert script_heads() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def test_a_database_at_head_is_not_migrated_and_one_behind_is(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db._write_engine.connect() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0003"))
            await conn.commit()
        await db.migrate()  # behind: migrated
        async with db.read() as session:
            version = (await session.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        assert frozenset({version}) == script_heads()

        def refuse(connection: sa.Connection) -> None:
            raise AssertionError("migrated a database at head")

        monkeypatch.setattr(database, "_upgrade", refuse)
        await db.migrate()  # at head: left alone
    finally:
        await db.dispose()
