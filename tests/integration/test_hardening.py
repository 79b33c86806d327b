"""Hardening found by review: deeply nested JSON on the per-server proxy, tokens hidden in encoded
query strings, who may scrape /metrics, and a full disk."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mcp_types import PARSE_ERROR

from tests.integration.conftest import Api

pytestmark = pytest.mark.anyio

P = "proj"
STDIO = {"transport": "stdio", "command": "true"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/api/v1/servers/s/mcp", f"/api/v1/projects/{P}/servers/s/mcp"])
async def test_the_server_proxy_answers_deeply_nested_json_with_a_parse_error_at_once(
    api: Api, path: str
) -> None:
    assert (await api.put("servers", "s", STDIO)).status_code == 201
    assert (await api.put("projects", P, {"servers": ["s"]})).status_code == 201
    headers = {**api.admin, "Content-Type": "application/json", "Accept": "application/json"}
    bodies = [
        _nested(100_000),
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":'
        + _nested(5_000)
        + "}}}",
    ]
    for body in bodies:
        started = time.monotonic()
        answer = await api.client.post(path, content=body, headers=headers)
        assert time.monotonic() - started < 5
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == PARSE_ERROR


async def _token(api: Api) -> str:
    await api.put("projects", P, {})
    body: dict[str, Any] = {"project": P, "name": "t", "bindings": [{"role": "view", "resource": "projects"}]}
    minted = await api.client.post("/api/v1/mcptokens", json=body, headers=api.admin)
    assert minted.status_code == 201, minted.text
    token: str = minted.json()["token"]
    return token


@pytest.mark.parametrize("encode", [lambda t: t.replace("_", "%5F"), lambda t: t.replace("_", "%255F")])
async def test_a_percent_encoded_token_in_the_query_string_is_refused(api: Api, encode: Any) -> None:
    token = await _token(api)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    answer = await api.client.post(f"/projects/{P}/mcp?x={encode(token)}", json=initialize, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid"
