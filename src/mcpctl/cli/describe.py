"""`mcpctl describe NOUN NAME`: one object, human-readable."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import click

from mcpctl.cli.columns import binding_text, labels_text
from mcpctl.cli.completion import complete_name, complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import usage_error
from mcpctl.cli.mcptokens import require_project, token_path
from mcpctl.cli.nouns import MCPTOKEN, PROMPT, complete_noun, object_path, resolve_noun
from mcpctl.cli.timefmt import format_age, format_timestamp

# Maps whose keys are the user's own (env var names, header names …): shown verbatim.
_USER_MAPS = frozenset({"env", "headers", "data", "arguments", "labels"})
Line = tuple[int, str, str | None]  # (indent, label, value or None for a heading)


def _title(key: str) -> str:
    return " ".join(word.capitalize() for word in re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key).split())


def _scalar(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "<none>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return ", ".join(str(item) for item in value)
        return "; ".join(json.dumps(item, separators=(", ", ": ")) for item in value)
    if isinstance(value, Mapping) and set(value) == {"secretRef"} and isinstance(value["secretRef"], Mapping):
        ref = value["secretRef"]
        return f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
    return str(value)


def _block(data: Mapping[str, Any], indent: int, *, verbatim: bool = False) -> list[Line]:
    lines: list[Line] = []
    for key, value in data.items():
        label = str(key) if verbatim else _title(str(key))
        nested = isinstance(value, Mapping) and value and set(value) != {"secretRef"}
        if nested:
            lines.append((indent, label, None))
            lines.extend(_block(value, indent + 2, verbatim=key in _USER_MAPS))
        else:
            lines.append((indent, label, _scalar(value)))
    return lines


def _spec_lines(kind: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[Line]:
    spec = {key: value for key, value in spec.items() if key != "description"}
    if kind == "RbacDefinition":
        lines: list[Line] = [(0, "Subjects", None)]
        lines += [(2, str(subject), "") for subject in spec.get("subjects") or []]
        lines.append((0, "Role Bindings", None))
        lines += [(2, binding_text(b), "") for b in spec.get("roleBindings") or []]
        rest = {k: v for k, v in spec.items() if k not in ("subjects", "roleBindings")}
        return lines + ([(0, "Spec", None), *_block(rest, 2)] if rest else [])
    if kind == MCPTOKEN:
        bindings = spec.get("bindings") or []
        lines = [(0, "RBAC", str(spec.get("rbac") or "empty"))]
        lines.append((0, "Bindings", None if bindings else "<none>"))
        return lines + [(2, binding_text(b), "") for b in bindings]
    if kind == "Secret":
        keys = status.get("keys")
        if not isinstance(keys, list):
            keys = sorted(spec.get("data") or {})
        return [(0, "Keys", None if keys else "<none>"), *[(2, str(key), "") for key in keys]]
    return [(0, "Spec", None), *_block(spec, 2)] if spec else []


def _render(lines: list[Line]) -> str:
    """Align the values of consecutive lines at the same indent, like kubectl's tabwriter."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j][0] == lines[i][0] and lines[j][2] is not None:
            j += 1
        if j == i:
            indent, label, _ = lines[i]
            out.append(f"{' ' * indent}{label}:")
            i += 1
            continue
        width = max(len(label) for _, label, _ in lines[i:j]) + 1
        for indent, label, value in lines[i:j]:
            text = f"{label}:".ljust(width + 2) + str(value) if value != "" else label
            out.append((" " * indent + text).rstrip())
        i = j
    return "\n".join(out)


def describe_text(obj: Mapping[str, Any], now: datetime) -> str:
    """The describe view of one API object."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    created = metadata.get("createdAt")
    lines: list[Line] = [(0, "Name", str(metadata.get("name"))), (0, "Kind", str(obj.get("kind")))]
    if metadata.get("project"):
        lines.append((0, "Project", str(metadata["project"])))
    if obj.get("kind") != MCPTOKEN:
        lines.append((0, "Labels", labels_text(obj)))
    if spec.get("description"):
        lines.append((0, "Description", str(spec["description"])))
    lines.append(
        (
            0,
            "Created",
            f"{format_timestamp(created)} ({format_age(created, now)} ago)" if created else "<unknown>",
        )
    )
    if metadata.get("updatedAt"):
        lines.append((0, "Updated", format_timestamp(metadata["updatedAt"])))
    lines += _spec_lines(str(obj.get("kind")), spec, status)
    shown_status = {k: v for k, v in status.items() if not (obj.get("kind") == "Secret" and k == "keys")}
    if obj.get("kind") == MCPTOKEN:  # a token that never expires or was never used says so
        shown_status |= {k: "never" for k in ("expiresAt", "lastUsedAt") if k in status and not status[k]}
    events = shown_status.pop("events", None) if obj.get("kind") == "Instance" else None
    if shown_status:
        lines += [(0, "Status", None), *_block(shown_status, 2)]
    text = _render(lines)
    if isinstance(events, list):
        text += "\n" + _events_text(events, now)
    return text


def _events_text(events: list[Any], now: datetime) -> str:
    """kubectl's Events table: oldest first, AGE relative to now."""
    if not events:
        return "Events:  <none>"
    rows = [
        (str(e.get("type", "")), format_age(e.get("time"), now), str(e.get("message", "")))
        for e in events
        if isinstance(e, dict)
    ]
    widths = [max(len(title), *(len(row[i]) for row in rows)) for i, title in enumerate(("TYPE", "AGE"))]
    out = ["Events:", f"  {'TYPE'.ljust(widths[0])}  {'AGE'.ljust(widths[1])}  MESSAGE"]
    out += [f"  {t.ljust(widths[0])}  {a.ljust(widths[1])}  {m}" for t, a, m in rows]
    return "\n".join(out)


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("name", shell_complete=complete_name)
@click.option(
    "-p",
    "--project",
    shell_complete=complete_project,
    help="McpTokens and prompts: the project the object belongs to.",
)
@pass_state
def describe(state: AppState, /, noun: str, name: str, project: str | None) -> None:
    """Show one object in detail: labels, times, spec and status (secret values never shown;
    an McpToken shows its bindings, never a token value: `describe mcptoken NAME -p P`)."""
    info = resolve_noun(noun)
    if info.kind == MCPTOKEN:
        path = token_path(require_project(project), name)
    elif info.kind == PROMPT:
        path = object_path(info, name, project)
    elif project is not None:
        raise usage_error(f"-p/--project applies only to mcptokens and prompts, not {info.plural}")
    else:
        path = object_path(info, name)
    obj = state.client().json("GET", path)
    click.echo(describe_text(obj, datetime.now(UTC)))
