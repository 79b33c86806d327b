"""Shared fixtures: the anyio backend and real databases (SQLite file, PostgreSQL database per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The `openai_server` fixture: an OpenAI-compatible test server (chat, embeddings, models).
pytest_plugins = ["tests.support.openai_server"]

PG_ADMIN_DSN = os.environ.get("MCPCTL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_HOST = "127.0.0.1:5432"
_TEMPLATE = f"mcpctl_tmpl_{os.getpid()}"
_template_ready = False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _pg_unavailable(exc: BaseException) -> None:
    # In CI an unreachable PostgreSQL is a failure; on a laptop without one, a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL at {PG_HOST} is unreachable in CI: {exc}")
    pytest.skip(f"PostgreSQL at {PG_HOST} unreachable: {exc}")


async def create_pg_database() -> str:
    """A fresh database cloned from a migrated template; returns its name."""
    global _template_ready
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _pg_unavailable(exc)
    try:
        if not _template_ready:
            await conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
            await conn.execute(f'CREATE DATABASE "{_TEMPLATE}"')
            from mcpctl.storage.database import Database

            db = Database(f"postgresql+asyncpg://postgres@{PG_HOST}/{_TEMPLATE}")
            await db.migrate()
            await db.dispose()
            _template_ready = True
        name = f"mcpctl_test_{uuid.uuid4().hex[:12]}"
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"')
        return name
    finally:
        await conn.close()


async def drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A real, empty database of each backend, isolated per test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'mcpd.db'}"
        return
    name = await create_pg_database()
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
    finally:
        await drop_pg_database(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _template_ready:
        return
    import asyncio

    import asyncpg

    async def _drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(_drop())
