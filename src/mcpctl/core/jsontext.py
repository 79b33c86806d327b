"""JSON text on the per-call paths: every message a call passes on (the data-plane link's frames,
the requests to an upstream, the answers read from one, the SSE events to a client, the audit spool)
is encoded and decoded here.

pydantic-core's encoder and parser, which take a sixth and a third of `json.dumps`'s and
`json.loads`' time for a tools/call message (measured: 0.45 µs against 2.9 to encode, 0.6 against
1.6 to decode), with the standard library's where they differ: text UTF-8 cannot hold (a lone
surrogate) is written escaped, as `json.dumps` writes it (pydantic-core refuses it, and a text
WebSocket frame or a UTF-8 line could not carry it raw), and such an escape is read as
`json.loads` reads it (pydantic-core refuses it). Everything else reads and writes the same:
compact separators, non-ASCII as is, NaN and Infinity as `json` writes them, big integers whole.
Nesting deeper than `MAX_DEPTH` (pydantic-core's limit, 200 levels) is refused on either path: a
deep-nesting bomb costs nothing. Bytes may start with a UTF-8 BOM, as `json.loads` allows.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

MAX_DEPTH = 200  # arrays and objects within each other, at most (pydantic-core's own limit)
_BOM = b"\xef\xbb\xbf"


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value` (dicts, lists, strings, numbers, booleans, None)."""
    try:
        return pydantic_core.to_json(value)
    except ValueError:
        return _json_dumps(value).encode()


def dumps_text(value: Any) -> str:
    """`dumps` as a str (for a text WebSocket frame or an SSE event)."""
    return dumps(value).decode()


def _json_dumps(value: Any) -> str:
    """json's text of what pydantic-core refused: non-ASCII escaped, so that UTF-8 can carry it."""
    try:
        return json.dumps(value, separators=(",", ":"))
    except RecursionError:
        raise ValueError("a value nested too deeply to write as JSON") from None


def loads(text: str | bytes) -> Any:
    """The value of one JSON text; ValueError (with its position) when it is not JSON."""
    if isinstance(text, bytes) and text.startswith(_BOM):
        text = text[len(_BOM) :]  # json reads bytes that start with one; pydantic-core does not
    try:
        return pydantic_core.from_json(text)
    except TypeError:  # a str holding a lone surrogate itself (json reads it as it is)
        pass
    except ValueError as exc:
        if "surrogate" not in str(exc) and "hex escape" not in str(exc):
            raise
    try:  # an escaped lone surrogate, which json reads into the str
        value = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _deeper_than(value, MAX_DEPTH):  # the limit holds on this path too
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (walked without recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
