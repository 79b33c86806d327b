"""Rules for a tools/list answer, and arguments made up from a tool's input schema."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

# The MCP spec's tool-name rule (2025-11-25 "Tool names"); DESIGN §5 relies on it for namespacing.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MAX_DEPTH = 8
_SAMPLE_STRINGS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "test@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "hostname": "example.com",
}


def tool_name_problem(name: str) -> str | None:
    if TOOL_NAME.match(name):
        return None
    if not name:
        return "a tool name is empty"
    if len(name) > 128:
        return f"tool name {name[:40]!r}… is {len(name)} characters long (at most 128)"
    return f"tool name {name!r} has characters outside [A-Za-z0-9_.-]"


def listing_problems(tools: Sequence[tuple[str, Any]]) -> list[str]:
    """What is wrong with a complete listing of (name, inputSchema) pairs, one line per problem."""
    problems = [p for name, _ in tools if (p := tool_name_problem(name)) is not None]
    counts = Counter(name for name, _ in tools)
    problems += [f"tool {name!r} is listed {n} times" for name, n in counts.items() if n > 1]
    for name, schema in tools:
        if not isinstance(schema, Mapping):
            problems.append(f"tool {name!r}: inputSchema is not a JSON object")
        elif schema.get("type") != "object":
            problems.append(f"tool {name!r}: inputSchema has type {schema.get('type')!r}, not 'object'")
    return problems


def derive_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a call: a plausible value for every required property (optional ones are left out).

    Uses `const`, `default`, `enum` and `examples` when the schema gives them; otherwise a value of the
    declared type that respects simple bounds. Local `$ref`s (`#/$defs/…`, `#/definitions/…`) resolve.
    """
    value = _object(schema, schema, 0)
    return value if isinstance(value, dict) else {}


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
    return {name: _value(properties.get(name, {}), root, depth + 1) for name in names}


def _value(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return "test"
    schema = resolve_ref(schema, root)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return options[0]
    for key in ("anyOf", "oneOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices:
            usable = [c for c in choices if not (isinstance(c, Mapping) and c.get("type") == "null")]
            return _value((usable or choices)[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                part = resolve_ref(part, root)
                merged.setdefault("properties", {}).update(part.get("properties") or {})
                merged["required"] = [*merged.get("required", []), *(part.get("required") or [])]
                merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        return _value(merged, root, depth + 1)
    return _typed(schema, _type_of(schema), root, depth)


def _type_of(schema: Mapping[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), declared[0] if declared else None)
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _typed(schema: Mapping[str, Any], kind: str, root: Mapping[str, Any], depth: int) -> Any:
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        count = schema.get("minItems")
        count = count if isinstance(count, int) and count > 0 else 0
        return [_value(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _string(schema)


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    value: float = low if isinstance(low, int | float) else 1  # the smallest allowed, else 1
    if isinstance(exclusive_low, int | float) and value <= exclusive_low:
        value = exclusive_low + 1
    if isinstance(high, int | float) and value > high:
        value = high
    if isinstance(exclusive_high, int | float) and value >= exclusive_high:
        value = exclusive_high - 1
    return int(value) if integer else value


def _string(schema: Mapping[str, Any]) -> str:
    text = _SAMPLE_STRINGS.get(str(schema.get("format")), "test")
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = text + "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[: max(high, 0)]
    return text


def resolve_ref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow local `$ref`s (a few hops at most); an unresolvable one reads as an empty schema."""
    for _ in range(_MAX_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        target: Any = root
        if not ref.startswith("#/"):
            return {}
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        if not isinstance(target, Mapping):
            return {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema
