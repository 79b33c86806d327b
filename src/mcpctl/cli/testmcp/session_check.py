"""The session step (2025-11-25 Streamable HTTP): on a second session of its own, replayed from the SDK's
initialize, check that an id is issued and reused, that an unknown id is refused with 404, and that
DELETE ends the session (a request with its id is then refused with 404)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2

from mcpctl.cli.testmcp.report import StepFailed, StepSkipped
from mcpctl.cli.testmcp.wire import Exchange, replay, rpc_answer

SESSION_HEADER = "mcp-session-id"
_INITIALIZED = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()


@dataclass
class SessionResult:
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


async def check(raw: httpx2.AsyncClient, initialize: Exchange, version: str) -> SessionResult:
    response = await replay(raw, initialize, drop=(SESSION_HEADER,))
    if response.status_code != 200:
        raise StepFailed("contract", f"a second initialize → HTTP {response.status_code}")
    session_id = response.headers.get(SESSION_HEADER)
    if not session_id:
        raise StepSkipped("no Mcp-Session-Id issued (a stateless server)")
    result = SessionResult("", {"issued": True})
    headers = {"mcp-protocol-version": version, SESSION_HEADER: session_id}

    response = await replay(raw, initialize, headers=headers, content=_INITIALIZED)
    if response.status_code not in (200, 202, 204):
        raise StepFailed(
            "contract", f"notifications/initialized with the session id → HTTP {response.status_code}"
        )
    response, answered = await _ping(raw, initialize, headers)
    if not answered:
        raise StepFailed("contract", f"a request with the issued session id → HTTP {response.status_code}")
    result.data["reused"] = True

    unknown = {**headers, SESSION_HEADER: f"mcpctl-test-{uuid.uuid4().hex}"}
    response, _ = await _ping(raw, initialize, unknown)
    result.data["unknownIdStatus"] = response.status_code
    after_unknown = _expect_gone(response, "a request with an unknown session id", result.warnings)

    response = await replay(
        raw, initialize, method="DELETE", content=b"", headers=headers, drop=("content-type",)
    )
    result.data["deleteStatus"] = response.status_code
    if response.status_code == 405:
        ended = "DELETE → 405 (not allowed, which the spec permits)"
    elif response.is_success:
        response, _ = await _ping(raw, initialize, headers)
        result.data["afterDeleteStatus"] = response.status_code
        gone = _expect_gone(response, "a request after DELETE", result.warnings)
        ended = f"DELETE → {result.data['deleteStatus']}, then {gone}"
    else:
        raise StepFailed("contract", f"DELETE of the session → HTTP {response.status_code}", result.data)
    result.detail = f"id issued and reused; unknown id → {after_unknown}; {ended}"
    return result


async def _ping(
    raw: httpx2.AsyncClient, initialize: Exchange, headers: dict[str, str]
) -> tuple[httpx2.Response, bool]:
    """A ping in the session; True when it was answered with a result."""
    request_id = f"mcpctl-test-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()
    response = await replay(raw, initialize, headers=headers, content=body)
    answer = rpc_answer(response, request_id) if response.status_code == 200 else None
    return response, answer is not None and "result" in answer


def _expect_gone(response: httpx2.Response, what: str, warnings: list[str]) -> str:
    """404 is right; 400 is tolerated with a warning (widespread, e.g. server-everything); 2xx is wrong."""
    status = response.status_code
    if status == 404:
        return "404"
    if status == 400:
        warnings.append(f"{what} → 400; the spec says 404")
        return "400"
    if response.is_success:
        raise StepFailed("contract", f"{what} was served (HTTP {status}); the spec says 404")
    raise StepFailed("contract", f"{what} → HTTP {status}; the spec says 404")
