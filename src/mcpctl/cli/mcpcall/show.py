"""What `tools` and `call` print: tools as a table (wide: with their parameters), names, or the tool
objects; a tool result as its text (structuredContent as JSON when it has no text, other content
named with its kind, mime type and size), or the whole CallToolResult as JSON or YAML."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mcpctl.cli import yamlio
from mcpctl.cli.printers import render_table

TOOL_OUTPUTS = ("table", "wide", "json", "yaml", "name")
CALL_OUTPUTS = ("text", "json", "yaml")
DESCRIPTION_WIDTH = 80


def format_tools(tools: Sequence[Mapping[str, Any]], output: str) -> str:
    """`tools` as `output` says; an empty listing is empty text except as json/yaml."""
    if output in ("json", "yaml"):
        return dump({"tools": list(tools)}, output)
    if output == "name":
        return "\n".join(str(tool.get("name", "")) for tool in tools)
    if not tools:
        return ""
    headers = ["NAME", "DESCRIPTION"] + (["PARAMETERS"] if output == "wide" else [])
    rows = []
    for tool in tools:
        row = [str(tool.get("name", "")), first_line(tool.get("description"))]
        if output == "wide":
            row.append(parameters(tool.get("inputSchema")))
        rows.append(row)
    return render_table(headers, rows)


def first_line(text: Any, width: int = DESCRIPTION_WIDTH) -> str:
    """The first non-blank line, cut to `width` characters with an ellipsis."""
    line = next((part.strip() for part in str(text or "").splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def parameters(schema: Any) -> str:
    """`timezone*, when`: the input schema's properties in order, required ones starred."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return ""
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return ", ".join(f"{name}*" if name in needed else str(name) for name in schema["properties"])


def dump(value: Any, output: str) -> str:
    if output == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return yamlio.dump(value).rstrip("\n")


def result_text(result: Mapping[str, Any]) -> str:
    """A CallToolResult (as JSON) for people: each text as it is, other content named, one per
    line; the structured content as JSON when there is no text."""
    content = result.get("content")
    blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    lines = [str(b.get("text", "")) if b.get("type") == "text" else describe_block(b) for b in blocks]
    has_text = any(b.get("type") == "text" for b in blocks)
    if not has_text and result.get("structuredContent") is not None:
        lines.insert(0, json.dumps(result["structuredContent"], indent=2, ensure_ascii=False))
    return "\n".join(lines)


def describe_block(block: Mapping[str, Any]) -> str:
    """`[image image/png, 1234 bytes]`, `[resource_link file:///x (text/plain)]`, …"""
    kind = str(block.get("type", "content"))
    if kind == "resource_link":
        mime = f" ({block['mimeType']})" if block.get("mimeType") else ""
        return f"[resource_link {block.get('uri', '')}{mime}]"
    if kind == "resource" and isinstance(block.get("resource"), Mapping):
        resource = block["resource"]
        mime = resource.get("mimeType") or "unknown type"
        size = _size(resource.get("text"), resource.get("blob"))
        return f"[resource {resource.get('uri', '')} {mime}, {size} bytes]"
    mime = block.get("mimeType") or "unknown type"
    return f"[{kind} {mime}, {_size(None, block.get('data'))} bytes]"


def _size(text: Any, blob: Any) -> int:
    if isinstance(text, str):
        return len(text.encode())
    if isinstance(blob, str):
        try:
            return len(base64.b64decode(blob, validate=True))
        except (binascii.Error, ValueError):
            return len(blob)
    return 0
