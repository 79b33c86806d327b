"""Private files: written atomically (temp file in the same directory, fsync, rename), 0600 in 0700 dirs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and any missing parents, each 0700 (existing ones are left as they are)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700, exist_ok=True)
        os.chmod(new, 0o700)


def write_private_file(path: Path, content: str) -> None:
    """Replace `path` atomically with `content`, readable only by its owner; no temp file is left."""
    make_private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
