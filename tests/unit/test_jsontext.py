"""core.jsontext: pydantic-core's speed with what json reads and writes, on every per-call path."""

from __future__ import annotations

import json

import pytest

from mcpctl.core import jsontext
from mcpctl.core.jsontext import MAX_DEPTH

MESSAGES = [
    {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"t": "hé"}}},
    {"jsonrpc": "2.0", "id": "a", "result": {"content": [{"type": "text", "text": "x\u2028y"}]}},
    {"big": 10**30, "neg": -(2**70), "float": 0.1 + 0.2, "exp": 1e100, "zero": -0.0, "none": None},
]


@pytest.mark.parametrize("message", MESSAGES)
def test_writes_what_json_writes(message: object) -> None:
    expected = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    assert jsontext.dumps_text(message) == expected
    assert jsontext.dumps(message) == expected.encode()
    assert jsontext.loads(expected) == message
    assert jsontext.loads(expected.encode()) == message


def test_nan_and_infinity_as_json_writes_and_reads_them() -> None:
    text = jsontext.dumps_text([float("inf"), float("-inf")])
    assert text == json.dumps([float("inf"), float("-inf")], separators=(",", ":"))
    assert jsontext.loads(text) == [float("inf"), float("-inf")]


def test_a_lone_surrogate_is_written_escaped_and_read_back() -> None:
    """UTF-8 cannot hold it (pydantic-core refuses it), so it is escaped, as json escapes it; and
    such an escape reads as json reads it."""
    value = {"text": "a\ud800b", "other": "é"}
    text = jsontext.dumps_text(value)
    assert "\\ud800" in text
    text.encode()  # valid UTF-8: a text WebSocket frame or a line can carry it
    assert jsontext.loads(text) == value
    assert jsontext.loads(jsontext.dumps(value)) == value


@pytest.mark.parametrize("text", ["[1,", "", "{'a': 1}", "[" * 100_000, '["\\ud800",' + "[" * 100_000])
def test_what_is_not_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(text)


@pytest.mark.parametrize("escape", ["", '"\\ud800",'])
def test_nesting_past_the_limit_is_refused_with_or_without_a_surrogate_before_it(escape: str) -> None:
    """A lone surrogate sends the text to json's parser: the depth limit holds there too."""
    deep = MAX_DEPTH + 5
    with pytest.raises(ValueError):
        jsontext.loads("[" + escape + "[" * deep + "]" * deep + "]")
    fine = MAX_DEPTH - 1
    assert jsontext.loads("[" + escape + "[" * fine + "]" * fine + "]")


def test_a_str_holding_a_lone_surrogate_and_bytes_with_a_bom_read_as_json_reads_them() -> None:
    assert jsontext.loads('{"a":"x\ud800"}') == {"a": "x\ud800"}
    assert jsontext.loads(b'\xef\xbb\xbf{"a":1}') == json.loads(b'\xef\xbb\xbf{"a":1}') == {"a": 1}
