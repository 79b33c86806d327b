"""Engines, units of work and migrations.

SQLite (the embedded default) runs in WAL mode with a single writer: write units of work go through a
one-connection engine that opens transactions with `BEGIN IMMEDIATE`, readers use their own pool.
PostgreSQL (asyncpg) uses one engine for both.
"""

from __future__ import annotations

import ast
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from mcpctl.core.errors import ConflictError, InsufficientStorageError, InvalidError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL: "database or disk is full"
_PG_DISK_FULL = "53100"  # SQLSTATE disk_full
OUT_OF_SPACE_SECONDS = 30.0


def storage_full(exc: BaseException) -> bool:
    """Whether a database error says the disk (or the database's size limit) is full."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL:
        return True
    if (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) == _PG_DISK_FULL:
        return True
    return "database or disk is full" in str(orig or exc)


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_timeout=60, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours (SQLAlchemy's pysqlite recipe).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The database of one mcpd: `read()` and `write()` units of work, `migrate()` on start."""

    def __init__(self, url: str):
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=4)
            self._write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
        else:
            self._read_engine = self._write_engine = create_async_engine(
                url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
            )
        self._read = async_sessionmaker(self._read_engine, expire_on_commit=False)
        self._write = async_sessionmaker(self._write_engine, expire_on_commit=False)
        # When a write last failed for lack of space, if none has succeeded since (see out_of_space).
        self._out_of_space_at: float | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A unit of work for reads (objects stay usable after the block)."""
        try:
            async with self._read() as session, session.begin():
                yield session
        except sa.exc.DataError as exc:
            raise InvalidError("the database refused a value (for example a NUL character)") from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that commits when the block ends without an exception."""
        try:
            async with self._write() as session, session.begin():
                yield session
        except sa.exc.DataError as exc:
            raise InvalidError("the database refused a value (for example a NUL character)") from exc
        except sa.exc.IntegrityError as exc:
            # A concurrent writer won a uniqueness or reference race (PostgreSQL) — a conflict, not a 500.
            raise ConflictError("the change conflicts with the current state; retry") from exc
        except sa.exc.DBAPIError as exc:
            if not storage_full(exc):
                raise
            self._out_of_space_at = time.monotonic()
            raise InsufficientStorageError(
                "the database could not write: its disk is full", details={"reason": "disk_full"}
            ) from exc
        self._out_of_space_at = None

    def out_of_space(self, within_seconds: float = OUT_OF_SPACE_SECONDS) -> bool:
        """Whether a write failed for lack of space in the last `within_seconds` and none has
        succeeded since. Bounded in time: a not-ready mcpd gets no writes that could clear it."""
        failed_at = self._out_of_space_at
        return failed_at is not None and time.monotonic() - failed_at < within_seconds

    async def migrate(self) -> bool:
        """Apply every Alembic migration (the only schema source) up to head; whether any ran. A
        database already at head is left alone without importing Alembic (a tenth of mcpd's import
        time)."""
        async with self._read_engine.connect() as conn:
            if await conn.run_sync(_at_head):
                return False
        async with self._write_engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()
        return True

    async def ping(self) -> None:
        async with self._read_engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self._read_engine.dispose()
        if self._write_engine is not self._read_engine:
            await self._write_engine.dispose()


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config  # only when migrations run: see Database.migrate

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command  # only when migrations run: see Database.migrate

    command.upgrade(alembic_config(connection), "head")


def script_heads() -> frozenset[str] | None:
    """The head revisions of the migration scripts, read from their `revision = ...` and
    `down_revision = ...` lines without Alembic (parsing them whole was 25 ms); None when a script
    is one this reading does not cover (branch labels, `depends_on`, a value that is not a literal
    on its line), and then Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found: dict[str, Any] = {}
        try:
            for match in _SCRIPT_LINE.finditer(path.read_text(encoding="utf-8")):
                found.setdefault(match["name"], ast.literal_eval(match["value"].strip()))
        except (OSError, SyntaxError, ValueError):
            return None
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str) or found.get("branch_labels") or found.get("depends_on"):
            return None
        down = (down,) if isinstance(down, str) else down or ()
        if not isinstance(down, tuple | list) or not all(isinstance(d, str) for d in down):
            return None
        revisions.add(revision)
        parents.update(down)
    return frozenset(revisions - parents) or None


# `revision = "0004"` or `down_revision: str | None = "0003"`, at the start of a line
_SCRIPT_LINE = re.compile(
    r"^(?P<name>revision|down_revision|branch_labels|depends_on)\b[ \t]*(?::[^=\n]*)?=(?P<value>[^\n#]*)",
    re.MULTILINE,
)
_VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps


def _at_head(connection: sa.Connection) -> bool:
    """Whether the database records exactly the scripts' heads as applied (nothing to migrate)."""
    heads = script_heads()
    if heads is None or not sa.inspect(connection).has_table(_VERSION_TABLE):
        return False
    rows = connection.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars()
    return frozenset(rows) == heads
