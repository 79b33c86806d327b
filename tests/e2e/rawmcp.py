"""Raw Streamable HTTP for tests that look at what the SDK client hides: HTTP statuses, headers,
`X-Request-Id`, a GET stream ending, a client that walks away mid-call."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
_ids = itertools.count(100)


def initialize(request_id: int) -> dict[str, Any]:
    """A 2025-11-25 `initialize` request from a client that declares nothing."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }


INITIALIZE = initialize(1)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def headers(token: str, session: str | None = None, **extra: str) -> dict[str, str]:
    out = {
        **auth(token),
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        **extra,
    }
    if session is not None:
        out["Mcp-Session-Id"] = session
        out["Mcp-Protocol-Version"] = LEGACY
    return out


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a JSON or SSE response body."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        found: dict[str, Any] | None = None
        for line in response.text.splitlines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if "result" in message or "error" in message:
                    found = message
        assert found is not None, response.text
        return found
    body: dict[str, Any] = response.json()
    return body


def open_session(http: httpx.Client, url: str, token: str) -> str:
    """initialize + notifications/initialized (2025-11-25); the session id."""
    init = initialize(next(_ids))
    response = http.post(url, json=init, headers=headers(token))
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    done = http.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers(token, session)
    )
    assert done.status_code == 202, done.text
    return session


def legacy_call(
    http: httpx.Client, url: str, token: str, session: str, tool: str, arguments: dict[str, Any], **extra: str
) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    return http.post(url, json=body, headers=headers(token, session, **extra))


def modern_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A 2026-07-28 request: the envelope in `_meta`."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": {**params, "_meta": meta}}


def modern_call(
    http: httpx.Client, url: str, token: str, tool: str, arguments: dict[str, Any], **extra: str
) -> httpx.Response:
    """A stateless 2026-07-28 tools/call (the envelope in `_meta`, the routing headers)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta},
    }
    routing = {"Mcp-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool}
    return http.post(url, json=body, headers={**headers(token), **routing, **extra})
