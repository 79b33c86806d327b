"""YAML in and out for manifests and `patch` values.

Reading resolves only JSON-like scalars: timestamps stay strings (bodies are JSON) and only
true/false are booleans (so `yes`, `on` stay strings, as in YAML 1.2).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    pass


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
