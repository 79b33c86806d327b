"""The `gate` proxy model (DESIGN §10): progressive disclosure of a project's tools.

The agent states its task with `begin_session(task)` and gets the project's prompts that fit it
(`prompt_selection`) and the tools ranked for it (`ranking`). On 2025-11-25 sessions the tool list
holds only the meta-tools until begin_session or a real tool call reveals the rest (with a
tools/list_changed notification). On 2026-07-28 tools/list must not change as a side effect of
other requests, so the surface stays fixed: `begin_session`, `find_tools(query)`, and
`call_tool(name, arguments)`; begin_session and find_tools then give the tools' schemas.

Everything ranked or called is what the caller's token reaches (the router lists and calls only
the servers the token may use): a token never learns of, ranks or calls a tool outside its reach.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mcpctl.core.proxymodels import GATE, Stage
from mcpctl.mcplocal.ports import ProjectView
from mcpctl.mcplocal.proxy.prompt_selection import select_prompts
from mcpctl.mcplocal.proxy.ranking import RankedTool, ToolRanker

BEGIN_SESSION = "begin_session"
FIND_TOOLS = "find_tools"
CALL_TOOL = "call_tool"
READ_PAGE = "read_page"
META_TOOLS = (BEGIN_SESSION, FIND_TOOLS, CALL_TOOL, READ_PAGE)

DEFAULT_PROMPT_BYTES = 8192
DEFAULT_TOOLS = 10

_TASK = {"type": "string", "description": "What you are about to do, in a sentence or two."}

_DEFINITIONS: dict[str, dict[str, Any]] = {
    BEGIN_SESSION: {
        "name": BEGIN_SESSION,
        "title": "Begin a session: state your task",
        "description": (
            "Call this first, with the task you are working on. Returns this project's instructions "
            "that fit the task and the tools best suited to it."
        ),
        "inputSchema": {"type": "object", "properties": {"task": _TASK}, "required": ["task"]},
    },
    FIND_TOOLS: {
        "name": FIND_TOOLS,
        "title": "Find tools",
        "description": "Search this project's tools by what you need to do; returns the best matches with "
        "their input schemas, to use with call_tool.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What the tool should do."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": DEFAULT_TOOLS},
            },
            "required": ["query"],
        },
    },
    CALL_TOOL: {
        "name": CALL_TOOL,
        "title": "Call a tool",
        "description": "Call one of this project's tools by the name begin_session or find_tools gave.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name."},
                "arguments": {"type": "object", "description": "The tool's arguments, per its input schema."},
            },
            "required": ["name"],
        },
    },
    READ_PAGE: {
        "name": READ_PAGE,
        "title": "Read a page of a long result",
        "description": "Read another page of a result that was too long to give at once.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "resultId": {"type": "string"},
                "page": {"type": "integer", "minimum": 1},
            },
            "required": ["resultId", "page"],
        },
    },
}


def gate_stage(view: ProjectView) -> Stage | None:
    return next((stage for stage in view.stages if stage.type == GATE), None)


def meta_tools(view: ProjectView, *, paged: bool) -> list[dict[str, Any]]:
    """The meta-tools a project offers: the gate's three with `gate`, read_page with content stages."""
    names = [BEGIN_SESSION, FIND_TOOLS, CALL_TOOL] if gate_stage(view) is not None else []
    if paged:
        names.append(READ_PAGE)
    return [_DEFINITIONS[name] for name in names]


def _int(config: dict[str, Any], name: str, default: int) -> int:
    value = config.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _brief(tool: dict[str, Any], *, schemas: bool) -> dict[str, Any]:
    out = {"name": tool["name"], "description": tool.get("description") or ""}
    if schemas:
        out["inputSchema"] = tool.get("inputSchema") or {"type": "object"}
    return out


class Gate:
    def __init__(self, ranker: ToolRanker):
        self.ranker = ranker

    async def begin_session(
        self, view: ProjectView, tools: Sequence[dict[str, Any]], task: str, *, schemas: bool
    ) -> dict[str, Any]:
        stage = gate_stage(view)
        config = stage.config if stage is not None else {}
        chosen = select_prompts(task, view.prompts, _int(config, "promptBytes", DEFAULT_PROMPT_BYTES))
        ranked = await self.ranker.rank(task, tools, _int(config, "tools", DEFAULT_TOOLS) or DEFAULT_TOOLS)
        briefs = [{**_brief(r.tool, schemas=schemas), "score": round(r.score, 4)} for r in ranked]
        lines: list[str] = []
        if chosen.delivered:
            lines.append("# Instructions for this task")
            for prompt in chosen.delivered:
                lines += [f"## {prompt.name}", prompt.text.rstrip(), ""]
        if chosen.omitted:
            lines.append("More instructions (prompts/get): " + ", ".join(chosen.omitted) + "\n")
        lines.append("# Tools for this task")
        how = "call them with call_tool(name, arguments)" if schemas else "they are now listed"
        lines.append(f"Best matches first ({how}; find_tools(query) searches all {len(tools)}):")
        for brief in briefs:
            lines.append(f"- {brief['name']}: {_one_line(brief['description'])}")
            if schemas:
                lines.append(f"  input: {json.dumps(brief['inputSchema'], separators=(',', ':'))}")
        structured = {
            "prompts": [{"name": p.name, "text": p.text} for p in chosen.delivered],
            "omittedPrompts": list(chosen.omitted),
            "tools": briefs,
            "toolCount": len(tools),
            "ranking": _method(ranked),
        }
        return {"content": [{"type": "text", "text": "\n".join(lines)}], "structuredContent": structured}

    async def find_tools(self, tools: Sequence[dict[str, Any]], query: str, limit: int) -> dict[str, Any]:
        ranked = await self.ranker.rank(query, tools, max(1, min(limit, 50)))
        briefs = [{**_brief(r.tool, schemas=True), "score": round(r.score, 4)} for r in ranked]
        text = "\n".join(
            f"- {b['name']}: {_one_line(b['description'])}\n  input: "
            f"{json.dumps(b['inputSchema'], separators=(',', ':'))}"
            for b in briefs
        )
        return {
            "content": [{"type": "text", "text": text or "No tools."}],
            "structuredContent": {"tools": briefs, "toolCount": len(tools), "ranking": _method(ranked)},
        }


def _method(ranked: Sequence[RankedTool]) -> str:
    return ranked[0].method if ranked else "bm25"


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
