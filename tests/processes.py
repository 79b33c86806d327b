"""Looking at real processes from tests, `make conformance` and `make bench`: liveness, descendants,
process groups, listening ports, and a clean environment for what they start."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This environment minus every mcpd/mcpctl/mcplocal setting, so none leaks into what is started."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MCPD_", "MCPCTL_", "MCPLOCAL_"))}


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """Running, not a zombie (a zombie is dead, only not reaped yet)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _table() -> list[tuple[int, list[str]]]:
    rows = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            rows.append((int(entry.name), fields))
    return rows


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, …)."""
    children: dict[int, list[int]] = {}
    for child, fields in _table():
        children.setdefault(int(fields[1]), []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if pid_alive(p)}


def group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid`."""
    return [pid for pid, fields in _table() if int(fields[2]) == pgid and fields[0] != "Z"]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_listening(port: int, process: subprocess.Popen[Any], what: str, timeout: float = 30.0) -> None:
    """Until something accepts on 127.0.0.1:port; fail if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        time.sleep(0.05)
    pytest.fail(f"{what} did not listen within {timeout:g}s")
