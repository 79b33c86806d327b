"""Proxy models (DESIGN §10): a named pipeline of stages that mcplocal applies between the client
and the upstreams. The built-in models exist without being created and cannot be deleted; a
project's `proxyModel` names a built-in or a stored ProxyModel, and mcpd resolves it to its stages
for the endpoint (`ProjectView.stages`).

Stage types: `gate` (progressive disclosure of tools, with the project's prompts), and the content
stages applied to tool results and resource reads in order: `section-split`, `paginate`,
`summarize`; custom types come from the `mcpctl.stages` entry point group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcpctl.core.errors import InvalidError

GATE = "gate"
SECTION_SPLIT = "section-split"
PAGINATE = "paginate"
SUMMARIZE = "summarize"
BUILT_IN_STAGE_TYPES: tuple[str, ...] = (GATE, SECTION_SPLIT, PAGINATE, SUMMARIZE)
ENTRY_POINT_GROUP = "mcpctl.stages"
# A custom stage's type: its entry point's name.
STAGE_TYPE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")

DEFAULT_PAGE_BYTES = 16 * 1024
# The stages of a project whose model cannot be resolved (e.g. deleted in a race with the project's
# edit): a type no entry point can be named, so every call fails rather than going out unchanged.
UNRESOLVED = "!unresolved"
# The built-in stages that work on the content's shape; a custom stage comes before them (a text
# transform after `paginate` would not reach the pages; after `summarize`, the LLM saw the text).
CONTENT_SHAPE_STAGES: tuple[str, ...] = (SECTION_SPLIT, PAGINATE, SUMMARIZE)


@dataclass(frozen=True)
class Stage:
    type: str
    config: dict[str, Any] = field(default_factory=dict)

    def as_spec(self) -> dict[str, Any]:
        return {"type": self.type, "config": dict(self.config)}


_CONTENT_PIPELINE: tuple[Stage, ...] = (
    Stage(SECTION_SPLIT),
    Stage(PAGINATE, {"pageBytes": DEFAULT_PAGE_BYTES}),
    Stage(SUMMARIZE),
)

BUILT_INS: dict[str, tuple[Stage, ...]] = {
    "direct": (),
    "gate": (Stage(GATE),),
    "content-pipeline": _CONTENT_PIPELINE,
    "default": (Stage(GATE), *_CONTENT_PIPELINE),
}

BUILT_IN_DESCRIPTIONS: dict[str, str] = {
    "direct": "nothing between the client and the upstreams",
    "gate": "progressive disclosure: begin_session(task) delivers fitting prompts and ranked tools",
    "content-pipeline": "large results split into sections and pages, summarized when an LLM is set",
    "default": "gate + content-pipeline",
}


def is_built_in(name: str) -> bool:
    return name in BUILT_INS


def built_in_spec(name: str) -> dict[str, Any]:
    """A built-in model as a ProxyModel spec (`get proxymodel gate -o yaml`)."""
    return {"stages": [stage.as_spec() for stage in BUILT_INS[name]]}


# Per stage type: the config keys it takes and each one's integer range (DESIGN §10).
_INT_CONFIG: dict[str, dict[str, tuple[int, int]]] = {
    PAGINATE: {"pageBytes": (1024, 1_048_576)},
    GATE: {"promptBytes": (0, 262_144), "tools": (1, 100)},
}


def _check_config(index: int, stage_type: str, config: Mapping[str, Any]) -> None:
    for key, (low, high) in _INT_CONFIG.get(stage_type, {}).items():
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidError(
                f"stages[{index}] ({stage_type}): config.{key} must be an integer from {low} to {high}",
                details={"stage": index, "type": stage_type, "field": f"config.{key}"},
            )


def check_stages(
    raw: Sequence[Mapping[str, Any]], installed: Callable[[], Iterable[str]]
) -> tuple[Stage, ...]:
    """A stored ProxyModel's stages, validated: each `type` is a built-in stage type or the name of
    an installed `mcpctl.stages` entry point (`installed()`, asked only when needed), each `config`
    a JSON object within the stage type's limits. InvalidError names the stage index and type."""
    stages: list[Stage] = []
    custom: set[str] | None = None
    for index, item in enumerate(raw):
        stage_type = item.get("type")
        config = item.get("config", {})
        if not isinstance(stage_type, str) or not STAGE_TYPE.match(stage_type):
            raise InvalidError(
                f"stages[{index}]: type {stage_type!r} is not a stage type name",
                details={"stage": index, "type": stage_type},
            )
        if stage_type not in BUILT_IN_STAGE_TYPES:
            if custom is None:
                custom = set(installed())
            if stage_type not in custom:
                known = ", ".join([*BUILT_IN_STAGE_TYPES, *sorted(custom)])
                raise InvalidError(
                    f'stages[{index}]: unknown stage type "{stage_type}" (built-in or installed '
                    f"as a {ENTRY_POINT_GROUP} entry point: {known})",
                    details={"stage": index, "type": stage_type},
                )
        if not isinstance(config, Mapping):
            raise InvalidError(
                f"stages[{index}] ({stage_type}): config must be a JSON object",
                details={"stage": index, "type": stage_type, "field": "config"},
            )
        _check_config(index, stage_type, config)
        shaped = next((s.type for s in stages if s.type in CONTENT_SHAPE_STAGES), None)
        if stage_type not in BUILT_IN_STAGE_TYPES and shaped is not None:
            raise InvalidError(
                f'stages[{index}]: custom stage "{stage_type}" must come before "{shaped}" (a stage '
                "after it would not reach the pages, or the LLM would already have seen the text)",
                details={"stage": index, "type": stage_type},
            )
        stages.append(Stage(stage_type, dict(config)))
    return tuple(stages)
