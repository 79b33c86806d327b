"""The servers start with the garbage collector off (programs.py) and serve with it on
(serving.settled): no collection while they import, and none lost once they serve."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from mcpctl.mcplocal import serving

_START = """
import gc, json, sys
sys.argv = [{program!r}, "--help"]
from mcpctl import programs
before = sum(generation["collections"] for generation in gc.get_stats())
try:
    programs.{program}()
except SystemExit:
    pass
after = sum(generation["collections"] for generation in gc.get_stats())
found = {{"collections": after - before, "enabled": gc.isenabled(), "sdk": "mcp_types" in sys.modules}}
print(json.dumps(found))
"""


@pytest.mark.parametrize("program", ["mcpd", "mcplocal"])
def test_a_server_imports_itself_without_a_collection(program: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _START.format(program=program)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # `--help` serves nothing: the collector is still off, after the SDK was imported without one
    assert found == {"collections": 0, "enabled": False, "sdk": program == "mcplocal"}


def test_serving_turns_the_collector_on() -> None:
    gc.disable()
    try:
        with serving.settled():
            assert gc.isenabled()
            assert gc.get_freeze_count() > 0  # what start-up made is out of its sight
        assert gc.isenabled()
    finally:
        gc.enable()
