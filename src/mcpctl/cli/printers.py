"""Output formats for objects: table, wide, json, yaml, name (kubectl's `-o`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from mcpctl.cli import yamlio
from mcpctl.cli.columns import columns_for
from mcpctl.core.kinds import KindInfo

OUTPUTS = ("table", "wide", "json", "yaml", "name")
PADDING = 3


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Whitespace-aligned columns, three spaces apart, no trailing blanks."""
    widths = [len(header) for header in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i] + PADDING) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + row[-1]).rstrip())
    return "\n".join(lines)


def as_list(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"kind": "List", "items": list(items)}


def object_name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return str(name) if name is not None else ""


def format_objects(
    objects: Sequence[Mapping[str, Any]],
    info: KindInfo,
    output: str,
    *,
    single: bool,
    now: datetime | None = None,
) -> str:
    """The text `get` prints. `single` means one object was asked for by name (json/yaml print it
    bare rather than as a List). Empty tables come back as the empty string."""
    if output in ("json", "yaml"):
        value: Any = objects[0] if single and len(objects) == 1 else as_list(objects)
        if output == "json":
            return json.dumps(value, indent=2, ensure_ascii=False)
        return yamlio.dump(value).rstrip("\n")
    if output == "name":
        return "\n".join(f"{info.singular}/{object_name(obj)}" for obj in objects)
    if not objects:
        return ""
    when = now or datetime.now(UTC)
    columns = [col for col in columns_for(info.kind) if output == "wide" or not col.wide]
    rows = [[col.value(obj, when) for col in columns] for obj in objects]
    return render_table([col.header for col in columns], rows)


def print_objects(
    objects: Sequence[Mapping[str, Any]], info: KindInfo, output: str, *, single: bool = False
) -> None:
    text = format_objects(objects, info, output, single=single)
    if text:
        click.echo(text)
    elif output in ("table", "wide"):
        click.echo("No resources found.", err=True)


def print_object(obj: Mapping[str, Any], info: KindInfo, output: str) -> None:
    """One object as a mutation's `-o json|yaml|name` shows it."""
    click.echo(format_objects([obj], info, output, single=True))


def format_response(value: Any, output: str) -> str:
    """A non-object answer (e.g. a token creation's) as `-o json` or `-o yaml`."""
    if output == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return yamlio.dump(value).rstrip("\n")
