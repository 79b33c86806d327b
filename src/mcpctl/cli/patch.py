"""`mcpctl patch NOUN NAME key=value…`: a JSON merge patch (RFC 7396) built from dotted keys."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click
import yaml

from mcpctl.cli import yamlio
from mcpctl.cli.completion import complete_name, complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import usage_error
from mcpctl.cli.nouns import MCPTOKEN, complete_noun, object_path, ref, resolve_noun


def parse_value(text: str) -> Any:
    """A YAML scalar or flow collection: `3` → 3, `true`, `null`, `[a, b]`, `{k: v}`; anything
    else, or text that is not valid YAML, stays the string as typed. Empty is the empty string."""
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        value = yamlio.load(stripped)
    except yaml.YAMLError:
        return text
    if isinstance(value, dict | list) and stripped[0] not in "[{":
        return text  # `a: b` or `- x` typed as a value is text, not a collection
    return value


def _set(patch: dict[str, Any], path: list[str], value: Any, key: str) -> None:
    node = patch
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise usage_error(f"{key!r} conflicts with an earlier value for {part!r}")
        node = child
    if path[-1] in node:
        raise usage_error(f"{key!r} is given twice or conflicts with another key")
    node[path[-1]] = value


def build_merge_patch(assignments: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs as `{metadata: {labels}, spec}` merge patch. Keys are spec fields, dotted
    for nesting (`healthCheck.intervalSeconds=30`, optionally `spec.` first); `labels.K=V` or
    `metadata.labels.K=V` set a label (always a string; `null` removes it)."""
    patch: dict[str, Any] = {}
    for item in assignments:
        key, found, raw = item.partition("=")
        if not found or not key:
            raise usage_error(f"{item!r}: expected KEY=VALUE")
        label_key = _label_key(key)
        if label_key == "":
            value = parse_value(raw)
            if not isinstance(value, dict) and value is not None:
                raise usage_error(f"{key!r}: expected a map such as '{{team: obs}}' or null")
            _set(patch, ["metadata", "labels"], value, key)
        elif label_key is not None:
            label_value = None if raw.strip() in ("null", "~") else raw
            _set(patch, ["metadata", "labels", label_key], label_value, key)
        else:
            path = key.removeprefix("spec.").split(".")
            if key == "spec" or path[0] in ("metadata", "kind", "status") or "" in path:
                raise usage_error(f"{key!r}: only spec fields and labels can be patched")
            _set(patch, ["spec", *path], parse_value(raw), key)
    return patch


def _label_key(key: str) -> str | None:
    """The label a key addresses; "" for the whole label map; None for a spec key."""
    for prefix in ("metadata.labels", "labels"):
        if key == prefix:
            return ""
        if key.startswith(prefix + "."):
            return key[len(prefix) + 1 :] or None
    return None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("name", shell_complete=complete_name)
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@click.option("--merge", "merge", metavar="JSON", help="A raw JSON merge patch ({metadata, spec}).")
@click.option(
    "-p", "--project", shell_complete=complete_project, help="Prompts: the project the prompt belongs to."
)
@pass_state
def patch(
    state: AppState,
    /,
    noun: str,
    name: str,
    assignments: tuple[str, ...],
    merge: str | None,
    project: str | None,
) -> None:
    """Change some fields of an object.

    \b
    mcpctl patch server time replicas=3 labels.team=obs
    mcpctl patch project monitoring 'servers=[time, docs]' proxyModel=gate
    mcpctl patch server time healthCheck.intervalSeconds=30 cwd=null
    mcpctl patch prompt triage -p monitoring priority=9 'tags=[oncall]'
    """
    info = resolve_noun(noun, writable=True)
    if info.kind == MCPTOKEN:
        raise usage_error("mcptokens are immutable: revoke the token and create a new one")
    if project is not None and not info.project_scoped:
        raise usage_error(f"-p/--project applies only to prompts, not {info.plural}")
    path = object_path(info, name, project)
    body: dict[str, Any] = {}
    if merge is not None:
        try:
            body = json.loads(merge)
        except ValueError as exc:
            raise usage_error(f"--merge is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise usage_error("--merge must be a JSON object")
    body = _deep_merge(body, build_merge_patch(assignments))
    if not body:
        raise usage_error("nothing to patch: give KEY=VALUE pairs or --merge")
    state.client().json("PATCH", path, json=body)
    click.echo(f"{ref(info, name)} patched")
