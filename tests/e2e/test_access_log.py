"""mcpd's access log (on at debug level) never prints a query string: it may carry a token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mcpctl.core.tokens import generate
from tests.e2e.conftest import running_mcpd

pytestmark = pytest.mark.e2e


def test_the_debug_access_log_prints_paths_without_query_strings(tmp_path: Path) -> None:
    token = generate()
    with running_mcpd(tmp_path, "sqlite", MCPD_LOG_LEVEL="debug") as daemon:
        with httpx.Client(base_url=daemon.url, timeout=10) as http:
            http.get("/healthz", params={"x": token.replace("_", "%5F")})
            http.get("/api/v1/projects", params={"access_token": token})
            answer = http.post(
                f"/projects/p/mcp?x={token}", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 400
        log = daemon.log()
    assert "GET /healthz?[redacted]" in log  # the access log is on, and redacted
    assert token not in log and token.replace("_", "%5F") not in log
