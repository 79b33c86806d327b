"""Audit event ids: the audit table keeps the first of two events with one id, so an id repeated by
another process (a forked child, or a process that seeded `random`) would drop an event silently."""

from __future__ import annotations

import os
import random

from mcpctl.mcplocal.ports import _event_id


def test_ids_are_32_hex_digits_and_do_not_follow_random_seed() -> None:
    random.seed(7)
    first = _event_id()
    random.seed(7)
    second = _event_id()
    assert first != second
    assert len(first) == 32 and int(first, 16) >= 0


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, _event_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child != _event_id()
