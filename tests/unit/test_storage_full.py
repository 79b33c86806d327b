"""Which database errors mean "no room to write" (SQLite's SQLITE_FULL, PostgreSQL's disk_full)."""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from mcpctl.storage.database import storage_full


class _PgError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__("could not extend file")
        self.sqlstate = sqlstate


def _wrapped(orig: Exception) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT …", {}, orig)


def test_sqlite_full_and_postgresql_disk_full_are_storage_full() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert storage_full(_wrapped(full))
    assert storage_full(_wrapped(_PgError("53100")))


def test_other_database_errors_are_not_storage_full() -> None:
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert not storage_full(_wrapped(locked))
    assert not storage_full(_wrapped(_PgError("53300")))  # too many connections
