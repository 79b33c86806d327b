"""A call's arguments from the command line: `key=value` coerced by the tool's input schema, merged
over `--json`'s object. A mistake is a usage error naming the key (exit 2).

A property typed string keeps the value as typed; integer, number, boolean, array, object and null
parse it as JSON and must give that type. A property that allows a string among other types takes
the JSON value when it has one of the other types, else the text. A property without a type takes
JSON when the value parses, else the text. `key=@FILE` reads the value from FILE (`key=@@x` is the
text `@x`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mcpctl.cli.errors import usage_error
from mcpctl.cli.testmcp.options import parse_json_object
from mcpctl.cli.testmcp.tools import resolve_ref

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def parse_json_arguments(text: str | None) -> dict[str, Any]:
    """`--json ARGS`: a JSON object (empty when not given)."""
    return {} if text is None else parse_json_object(text, "--json")


def split_assignments(items: Iterable[str]) -> list[tuple[str, str]]:
    """`key=value` pairs in order; each key once."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        key, found, value = item.partition("=")
        if not found or not key:
            raise usage_error(f"{item!r}: expected KEY=VALUE")
        if key in seen:
            raise usage_error(f"{key}: given twice")
        seen.add(key)
        pairs.append((key, value))
    return pairs


def build_arguments(
    schema: Mapping[str, Any], pairs: Iterable[tuple[str, str]], base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`base` (from --json) with each `key=value` set over it, coerced by `schema`'s properties."""
    arguments = dict(base or {})
    for key, raw in pairs:
        arguments[key] = coerce(key, _read_value(key, raw), property_schema(schema, key), schema)
    return arguments


def check_required(schema: Mapping[str, Any], arguments: Mapping[str, Any], hint: str) -> None:
    """A usage error naming the required arguments that are missing (`hint`: where to look them up)."""
    required = schema.get("required")
    missing = [str(k) for k in required if k not in arguments] if isinstance(required, list) else []
    if missing:
        raise usage_error(f"{', '.join(missing)}: required by the tool ({hint})")


def property_schema(schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The schema of `key`, or a usage error when the tool takes no such argument."""
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    found = properties.get(key)
    if isinstance(found, Mapping):
        return resolve_ref(found, schema)
    extra = schema.get("additionalProperties")
    if extra is True or isinstance(extra, Mapping):
        return resolve_ref(extra, schema) if isinstance(extra, Mapping) else {}
    known = ", ".join(str(name) for name in properties) or "none"
    raise usage_error(f"{key}: the tool has no such argument (its arguments: {known})")


def coerce(key: str, raw: str, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """The value of `key=raw` as `schema` wants it (`root`: the input schema its `$ref`s point into)."""
    allowed = allowed_types(schema, root or schema)
    if allowed == {"string"}:
        return raw
    try:
        value = json.loads(raw, parse_constant=_not_json_constant)
    except ValueError:
        value = _NOT_JSON
    if not allowed:
        return raw if value is _NOT_JSON else value
    if value is not _NOT_JSON and any(_is(value, kind) for kind in allowed if kind != "string"):
        return int(value) if isinstance(value, float) and "number" not in allowed else value  # 5.0 → 5
    if "string" in allowed:
        return raw
    wanted = " or ".join(_describe(kind) for kind in sorted(allowed))
    raise usage_error(f"{key}: expected {wanted}, got {raw!r}")


def allowed_types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema allows, from `type`, `enum`/`const`, `anyOf`/`oneOf` (empty: any)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    values = schema.get("enum") if isinstance(schema.get("enum"), list) else None
    if values is None and "const" in schema:
        values = [schema["const"]]
    if values is not None:  # strings only: as typed; otherwise whatever parses
        return {"string"} if all(isinstance(v, str) for v in values) else set()
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        choices = schema.get(key)
        for choice in choices if isinstance(choices, list) else []:
            kinds = allowed_types(resolve_ref(choice, root), root) if isinstance(choice, Mapping) else set()
            if not kinds:
                return set()
            found |= kinds
    return found


class _NotJson:
    pass


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json would take NaN and Infinity


_NOT_JSON: Any = _NotJson()


def _is(value: Any, kind: str) -> bool:
    expected = _JSON_TYPES.get(kind)
    if expected is None or (isinstance(value, bool) and kind in ("integer", "number")):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, expected)


def _describe(kind: str) -> str:
    special = {"integer": "an integer", "array": "a JSON array", "object": "a JSON object"}
    return special.get(kind, f"a {kind}")


def _read_value(key: str, raw: str) -> str:
    if raw.startswith("@@"):
        return raw[1:]
    if not raw.startswith("@"):
        return raw
    path = Path(raw[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise usage_error(f"{key}: cannot read {path}: {reason}") from exc
