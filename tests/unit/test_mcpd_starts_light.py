"""What mcpd imports before it serves decides its cold start (docs/performance.md "Cold start"):
its entry point spawns the launch plan before it imports the web framework, the SDK and the
database layer; and what serving the project endpoint needs leaves out the REST API (FastAPI, its
routers: FastAPI builds their routes on import) and httpx (it imports its command line: rich,
pygments)."""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded_after(modules: str, watched: tuple[str, ...]) -> list[str]:
    probe = (
        f"import json, sys; import {modules}; w = {watched!r}; "
        "print(json.dumps(sorted(m for m, module in sys.modules.items() "
        "if module is not None and (m.split('.')[0] in w or m in w))))"  # None: kept from loading
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(done.stdout))


def test_the_entry_point_imports_none_of_the_heavy_parts() -> None:
    heavy = ("fastapi", "starlette", "sqlalchemy", "mcp", "uvicorn", "httpx", "httpx2", "alembic")
    assert _loaded_after("mcpctl.mcpd.__main__", heavy) == []


def test_serving_the_project_endpoint_imports_no_rest_api_and_no_httpx() -> None:
    watched = (
        "fastapi",
        "httpx",
        "rich",
        "yaml",  # read with a config file, written on the first start only
        "mcpctl.mcpd.schemas",
        "mcpctl.mcpd.routers.mcp_proxy",
        "mcpctl.mcpd.routers.projects",
    )
    assert _loaded_after("mcpctl.mcpd.server, mcpctl.mcpd.gateway", watched) == []


def test_httpx_comes_without_its_command_line() -> None:
    # httpx imports rich and pygments for its own CLI whenever they are installed (mcpctl/__init__.py)
    assert _loaded_after("mcpctl.cli.main, mcpctl.mcplocal.remote, httpx", ("rich", "pygments")) == []
