"""The data dir on disk (DESIGN §8, §12): private, writable, and with room to write.

It holds the embedded database, `secret.key`, `admin-credentials` and McpToken files, so it is 0700
and the database files are 0600 (SQLite creates `-wal` and `-shm` with the database file's mode).
mcpd checks at start that it can write there and says which path it cannot, instead of a traceback
ending in "unable to open database file"; `/readyz` fails while the disk has less than the reserve.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from mcpctl.mcpd.files import make_private_dirs

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class DataDirError(Exception):
    """The data dir or the database file cannot be used; the message names the path."""


def sqlite_path(database_url: str) -> Path | None:
    """The file of an SQLite database URL (None for other databases and in-memory SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _writable_dir(directory: Path) -> None:
    try:
        make_private_dirs(directory)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-check.")
    except OSError as exc:
        raise DataDirError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _private(path: Path, mode: int) -> None:
    """Tighten `path` to `mode` when it is ours (a shared parent someone else owns is left alone)."""
    with contextlib.suppress(FileNotFoundError):
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 != mode:
            try:
                os.chmod(path, mode)
            except OSError as exc:
                raise DataDirError(f"cannot make {path} private: {exc.strerror or exc}") from exc


def secure_database_files(database_url: str) -> None:
    """The SQLite database and its journal files readable by their owner only."""
    path = sqlite_path(database_url)
    if path is not None:
        for suffix in _SQLITE_SUFFIXES:
            _private(path.with_name(path.name + suffix), PRIVATE_FILE)


def prepare(data_dir: Path, database_url: str) -> None:
    """Create the data dir (0700) and check that it and the database file can be written.

    Raises DataDirError naming the path that cannot be used."""
    _writable_dir(data_dir)
    _private(data_dir, PRIVATE_DIR)
    path = sqlite_path(database_url)
    if path is None:
        return
    _writable_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    except OSError as exc:
        raise DataDirError(f"cannot open the database {path}: {exc.strerror or exc}") from exc
    os.close(fd)
    secure_database_files(database_url)


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of `directory`."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize
