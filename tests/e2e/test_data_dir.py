"""mcpd and its data dir as real processes: an unwritable data dir stops mcpd at once with one line
that names the path (exit 1, no traceback), and what it writes there is readable by its owner only."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import MCPD, running_mcpd
from tests.processes import clean_env, free_port

pytestmark = pytest.mark.e2e


@contextmanager
def _read_only(directory: Path) -> Iterator[Path]:
    """`directory` unwritable even for root: a read-only tmpfs when mounting is allowed, else 0500."""
    directory.mkdir()
    if os.geteuid() != 0:
        os.chmod(directory, 0o500)
        try:
            yield directory
        finally:
            os.chmod(directory, 0o700)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(directory)], capture_output=True, timeout=10
    )
    if mounted.returncode != 0:
        pytest.skip("root, but mounting a read-only tmpfs is not permitted here")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=10)


@pytest.mark.parametrize("where", ["data dir", "database"])
def test_an_unwritable_data_dir_stops_mcpd_with_one_line_naming_the_path(tmp_path: Path, where: str) -> None:
    with _read_only(tmp_path / "ro") as read_only:
        env = {**clean_env(), "MCPD_DATA_DIR": str(read_only / "data" if where == "data dir" else tmp_path)}
        if where == "database":
            env["MCPD_DATABASE_URL"] = f"sqlite+aiosqlite:///{read_only / 'mcpd.db'}"
        done = subprocess.run(
            [MCPD, "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert str(read_only) in lines[0]


def test_mcpd_keeps_its_data_dir_and_database_files_to_its_owner(tmp_path: Path) -> None:
    with running_mcpd(tmp_path, "sqlite") as daemon:
        data = daemon.data_dir
        names = ["mcpd.db", "mcpd.db-wal", "mcpd.db-shm", "secret.key", "admin-credentials"]
        modes = {name: (data / name).stat().st_mode & 0o777 for name in names}
        assert (data.stat().st_mode & 0o777, modes) == (0o700, dict.fromkeys(names, 0o600))
