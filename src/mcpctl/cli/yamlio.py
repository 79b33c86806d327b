"""YAML in and out for manifests and `patch` values.

Reading resolves only JSON-like scalars: timestamps stay strings (bodies are JSON) and only
true/false are booleans (so `yes`, `on` stay strings, as in YAML 1.2). Reading is bounded (depth,
aliases, expanded size): a hostile file is a clear error, not a MemoryError or a RecursionError.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"


MAX_DEPTH = 100  # nesting, counted through aliases; JSON bodies deeper than this are refused anyway
MAX_ALIASES = 1000
MAX_NODES = 1_000_000  # after aliases are expanded: what the JSON body would hold


class YamlLimitError(yaml.YAMLError):
    """A document refused before it is built: too deep, too many aliases, or aliases that expand to
    too much (the "billion laughs") or into themselves."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with bounds: the composer is recursive and aliases share nodes that JSON would
    copy, so depth, alias count and the expanded size are checked before anything is constructed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion (every alias copied, as JSON will) is deeper than
    MAX_DEPTH, larger than MAX_NODES, or infinite. Iterative, each node visited once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise YamlLimitError(f"aliases expand to more than {MAX_NODES} values")
            if depth[key] > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels (through aliases)")
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlLimitError("an alias refers to the node that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in size)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_TIMESTAMP, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


_Loader.add_constructor(_BOOL, _construct_bool)


def load_all(text: str) -> list[Any]:
    """Every document of a (multi-document) YAML or JSON text, empty documents skipped."""
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def load(text: str) -> Any:
    """One YAML value (flow or block)."""
    return yaml.load(text, Loader=_Loader)


def dump(value: Any) -> str:
    """Block-style YAML keeping key order (kind, metadata, spec, status)."""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)
