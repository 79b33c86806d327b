"""The direct lane's shortcuts (mcplocal/direct.py) give what the SDK's own checks and dump give:
params it does not validate always pass the SDK's validation, a result it dumps itself is dumped as
the SDK dumps it, and anything else takes the SDK's way."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp_types import methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcpctl.mcplocal.direct import _plain_params, _plain_result

METHOD = "tools/call"

PLAIN_PARAMS: list[dict[str, Any]] = [
    {"name": "fx__echo"},
    {"name": "fx__echo", "arguments": {}},
    {"name": "fx__echo", "arguments": None},
    {"name": "", "arguments": {"text": "x", "nested": {"a": [1, 2.5, None, True]}}},
]
OTHER_PARAMS: list[dict[str, Any]] = [
    {},
    {"name": 5},
    {"name": None},
    {"name": "fx__echo", "arguments": ["x"]},
    {"name": "fx__echo", "arguments": "x"},
    {"name": "fx__echo", "_meta": {}},
    {"name": "fx__echo", "task": {"ttl": 1}},
    {"name": "fx__echo", "extra": 1},
]


@pytest.mark.parametrize("version", HANDSHAKE_PROTOCOL_VERSIONS)
@pytest.mark.parametrize("params", PLAIN_PARAMS)
def test_params_taken_as_plain_pass_the_sdks_validation(params: dict[str, Any], version: str) -> None:
    assert _plain_params(params)
    methods.validate_client_request(METHOD, version, params)
    types.CallToolRequestParams.model_validate(params, by_name=False)


@pytest.mark.parametrize("params", OTHER_PARAMS)
def test_other_params_are_validated_by_the_sdk(params: dict[str, Any]) -> None:
    assert not _plain_params(params)


PLAIN_RESULTS: list[dict[str, Any]] = [
    {"content": []},
    {"content": [{"type": "text", "text": "x"}]},
    {"content": [{"text": "x", "type": "text"}], "isError": False},
    {"isError": True, "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "é\n"}]},
]
OTHER_RESULTS: list[dict[str, Any]] = [
    {},
    {"content": "x"},
    {"content": [{"type": "text", "text": "x"}], "isError": None},
    {"content": [{"type": "text", "text": "x"}], "isError": 1},
    {"content": [{"type": "text", "text": "x"}], "structuredContent": {"a": 1}},
    {"content": [{"type": "text", "text": "x"}], "_meta": {"a": 1}},
    {"content": [{"type": "text", "text": 5}]},
    {"content": [{"type": "text", "text": "x", "annotations": {"priority": 1}}]},
    {"content": [{"type": "image", "data": "AA==", "mimeType": "image/png"}]},
    {"content": [{"type": "text"}]},
    {"content": ["x"]},
]


@pytest.mark.parametrize("version", HANDSHAKE_PROTOCOL_VERSIONS)
@pytest.mark.parametrize("result", PLAIN_RESULTS)
def test_a_plain_result_is_dumped_as_the_sdk_dumps_it(result: dict[str, Any], version: str) -> None:
    dumped = _plain_result(result)
    expected = methods.serialize_server_result(METHOD, version, dict(result))
    assert dumped == expected
    assert list(dumped) == list(expected)
    assert [list(item) for item in dumped["content"]] == [list(item) for item in expected["content"]]


@pytest.mark.parametrize("result", OTHER_RESULTS)
def test_any_other_result_is_dumped_by_the_sdk(result: dict[str, Any]) -> None:
    assert _plain_result(result) is None
