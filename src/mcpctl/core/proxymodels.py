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
from dataclasses import dataclass, field
from typing import Any

GATE = "gate"
SECTION_SPLIT = "section-split"
PAGINATE = "paginate"
SUMMARIZE = "summarize"
BUILT_IN_STAGE_TYPES: tuple[str, ...] = (GATE, SECTION_SPLIT, PAGINATE, SUMMARIZE)
ENTRY_POINT_GROUP = "mcpctl.stages"
# A custom stage's type: its entry point's name.
STAGE_TYPE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")

DEFAULT_PAGE_BYTES = 16 * 1024


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
