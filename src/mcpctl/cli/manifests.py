"""Reading manifests for `apply -f`: multi-document YAML or JSON, `kind: List` expanded, every
document checked (kind known and writable, metadata.name present) before anything is sent."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mcpctl.cli import yamlio
from mcpctl.cli.errors import CliError
from mcpctl.cli.mcptokens import check_token_manifest
from mcpctl.cli.nouns import MCPTOKEN, is_served
from mcpctl.core.kinds import KindInfo, kind_for_name

_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(CliError):
    """A manifest that cannot be applied; the message names the file and document."""


@dataclass(frozen=True)
class Manifest:
    info: KindInfo
    name: str
    body: dict[str, Any]
    where: str


def _parse(text: str, source: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except (ValueError, RecursionError):
            pass  # YAML flow style, broken or too deep JSON: the (bounded) YAML parser says what
    try:
        return yamlio.load_all(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: invalid YAML: {exc}".replace("\n", " ")) from exc


def _check(doc: Any, where: str) -> Manifest:
    if not isinstance(doc, Mapping):
        raise ManifestError(f"{where}: expected a mapping with kind, metadata and spec")
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ManifestError(f"{where}: missing kind")
    info = kind_for_name(kind)
    if info is None:
        raise ManifestError(f"{where}: unknown kind {kind!r}")
    if info.read_only:
        raise ManifestError(f"{where}: {info.kind} is read-only and cannot be applied")
    if not is_served(info):
        raise ManifestError(f"{where}: kind {info.kind} is not served by this version of mcpd yet")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}: missing metadata.name")
    if info.project_scoped and info.kind != MCPTOKEN:
        project = metadata.get("project") if isinstance(metadata, Mapping) else None
        if not isinstance(project, str) or not project:
            raise ManifestError(f"{where}: a {info.kind} needs metadata.project")
    if info.kind == MCPTOKEN:
        try:
            check_token_manifest(doc, where)
        except CliError as exc:
            raise ManifestError(exc.message) from exc
    return Manifest(info=info, name=name, body=dict(doc), where=where)


def load_manifests(text: str, source: str) -> list[Manifest]:
    """Every object in one file's text, in order; ManifestError for the first bad document."""
    out: list[Manifest] = []
    for number, doc in enumerate(_parse(text, source), start=1):
        where = f"{source}: document {number}"
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise ManifestError(f"{where}: a List needs 'items'")
            out += [_check(item, f"{where}, item {i}") for i, item in enumerate(items, start=1)]
        else:
            out.append(_check(doc, where))
    return out


def _files(target: str) -> list[tuple[str, str]]:
    if target == "-":
        return [("<stdin>", sys.stdin.read())]
    path = Path(target)
    paths = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES) if path.is_dir() else [path]
    out = []
    for item in paths:
        try:
            out.append((str(item), item.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read {item}: {exc}") from exc
    return out


def read_manifests(targets: tuple[str, ...]) -> list[Manifest]:
    """All manifests of the `-f` targets (files, directories of .yaml/.yml/.json, `-` for stdin)."""
    manifests: list[Manifest] = []
    for target in targets:
        for source, text in _files(target):
            manifests += load_manifests(text, source)
    return manifests
