"""`mcpd` spawns the launch plan before it imports the web framework, the SDK and the database layer
(supervisor/prelaunch.py, cold start): importing its entry point must not pull them in."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("fastapi", "starlette", "sqlalchemy", "mcp", "uvicorn", "httpx", "httpx2", "alembic")


def test_the_entry_point_imports_none_of_the_heavy_parts() -> None:
    probe = (
        "import json, sys; import mcpctl.mcpd.__main__; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
