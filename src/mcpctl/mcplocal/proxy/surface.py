"""What the project endpoint serves, with the project's proxy model applied (DESIGN §10): the
router's aggregate of the upstreams, seen through the gate (which tools are listed, the
meta-tools) and the content pipeline (long results in pages), plus the project's own prompts.

`direct` projects get the router's answers untouched. One surface serves every mode (embedded,
`mcplocal serve`, `mcplocal stdio`): it sits between the SDK endpoint and the router.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcpctl.mcplocal.ports import Caller, Notify, ProjectPrompt, ProjectView, Relay
from mcpctl.mcplocal.proxy.gate import (
    BEGIN_SESSION,
    CALL_TOOL,
    DEFAULT_TOOLS,
    META_TOOLS,
    READ_PAGE,
    Gate,
    gate_stage,
    meta_tools,
)
from mcpctl.mcplocal.proxy.pipeline import ContentPipeline, content_stages, parse_result_uri
from mcpctl.mcplocal.proxy.stages import MAX_PAGES
from mcpctl.mcplocal.router import Router

logger = logging.getLogger(__name__)

TOOLS_LIST_CHANGED = "notifications/tools/list_changed"


def _arguments(params: dict[str, Any]) -> dict[str, Any]:
    arguments = params.get("arguments")
    return arguments if isinstance(arguments, dict) else {}


def _string(params: dict[str, Any], name: str) -> str:
    arguments = params.get("arguments")
    value = arguments.get(name) if isinstance(arguments, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise MCPError(INVALID_PARAMS, f"Invalid params: {name} is required (a non-empty string)")
    return value


def _prompt_item(prompt: ProjectPrompt) -> dict[str, Any]:
    first = next((line.strip() for line in prompt.text.splitlines() if line.strip()), "")
    return {"name": prompt.name, "description": prompt.description or first[:200]}


class Surface:
    def __init__(self, router: Router, pipeline: ContentPipeline, gate: Gate):
        self.router, self.pipeline, self.gate = router, pipeline, gate

    async def aclose(self) -> None:
        """Close the LLM and embeddings clients' connections."""
        await self.pipeline.aclose()
        await self.gate.ranker.aclose()

    def _revealed(self, session: str | None) -> bool:
        live = self.router.sessions.get(session) if session is not None else None
        return live is not None and live.revealed

    async def _reveal(self, session: str | None, notify: Notify | None) -> None:
        """A legacy session's gate opens: its tool list is the whole project's from now on."""
        live = self.router.sessions.get(session) if session is not None else None
        if live is None or live.revealed:
            return
        live.revealed = True
        if notify is not None:
            await notify({"method": TOOLS_LIST_CHANGED})

    # ---- lists ----------------------------------------------------------------------------------

    async def list_items(
        self, caller: Caller, kind: str, cursor: str | None, *, modern: bool, session: str | None
    ) -> dict[str, Any]:
        view = await self.router.project(caller)
        if kind == "tools":
            meta = meta_tools(view, paged=bool(content_stages(view)))
            if gate_stage(view) is not None and (modern or not self._revealed(session)):
                if cursor is not None:
                    raise MCPError(INVALID_PARAMS, "Invalid params: unknown cursor")
                return {"tools": meta}
            return self._first(await self.router.list_items(caller, kind, cursor), "tools", meta, cursor)
        result = await self.router.list_items(caller, kind, cursor)
        if kind == "prompts":
            return self._first(result, "prompts", [_prompt_item(p) for p in view.prompts], cursor)
        return result

    @staticmethod
    def _first(
        result: dict[str, Any], field: str, own: list[dict[str, Any]], cursor: str | None
    ) -> dict[str, Any]:
        """The gateway's own items head the first page; an upstream item of the same name is hidden."""
        if cursor is not None or not own:
            return result
        names = {item["name"] for item in own}
        return {**result, field: [*own, *(item for item in result[field] if item.get("name") not in names)]}

    # ---- tools/call -----------------------------------------------------------------------------

    async def call_tool(
        self,
        caller: Caller,
        params: dict[str, Any],
        notify: Notify | None,
        *,
        session: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        relay: Relay | None = None,
        modern: bool = False,
    ) -> dict[str, Any]:
        view = await self.router.project(caller)
        name = params.get("name")
        gated = gate_stage(view) is not None
        if name in META_TOOLS and (gated or (name == READ_PAGE and content_stages(view))):
            return await self._meta(
                caller, view, str(name), params, notify, session, request_id, client_addr, relay, modern
            )
        return await self._call(caller, view, params, notify, session, request_id, client_addr, relay, modern)

    async def _call(
        self,
        caller: Caller,
        view: ProjectView,
        params: dict[str, Any],
        notify: Notify | None,
        session: str | None,
        request_id: str | None,
        client_addr: str | None,
        relay: Relay | None,
        modern: bool,
    ) -> dict[str, Any]:
        """A real tool, called (through the content pipeline); on a legacy gated session, the call
        also opens the gate."""
        server, result = await self.router.call_tool(
            caller,
            params,
            notify,
            session=session,
            request_id=request_id,
            client_addr=client_addr,
            relay=relay,
        )
        if gate_stage(view) is not None and not modern:
            await self._reveal(session, notify)
        if server is None:
            return result
        return await self.pipeline.tool_result(caller, view, server, str(params.get("name")), result)

    async def _meta(
        self,
        caller: Caller,
        view: ProjectView,
        name: str,
        params: dict[str, Any],
        notify: Notify | None,
        session: str | None,
        request_id: str | None,
        client_addr: str | None,
        relay: Relay | None,
        modern: bool,
    ) -> dict[str, Any]:
        if name == CALL_TOOL:
            arguments = params.get("arguments")
            target = arguments.get("name") if isinstance(arguments, dict) else None
            inner = arguments.get("arguments", {}) if isinstance(arguments, dict) else {}
            if not isinstance(target, str) or target in META_TOOLS:
                raise MCPError(INVALID_PARAMS, "Invalid params: name must name one of the project's tools")
            if not isinstance(inner, dict):
                raise MCPError(INVALID_PARAMS, "Invalid params: arguments must be an object")
            forwarded = {
                **{k: v for k, v in params.items() if k not in ("name", "arguments")},
                "name": target,
                "arguments": inner,
            }
            return await self._call(
                caller, view, forwarded, notify, session, request_id, client_addr, relay, modern
            )
        with self.router.audited("tool_call", caller, name, session, request_id, client_addr) as audited:
            if name == READ_PAGE:
                arguments = _arguments(params)
                result_id, page = arguments.get("resultId"), arguments.get("page")
                if (
                    not isinstance(result_id, str)
                    or not isinstance(page, int)
                    or isinstance(page, bool)
                    or not 1 <= page <= MAX_PAGES
                    or len(result_id) > 64
                ):
                    raise MCPError(
                        INVALID_PARAMS, "Invalid params: resultId (string) and page (integer) are required"
                    )
                record, text = await self.pipeline.page(caller, result_id, page)
                audited.server = record["server"]
                audited.outcome = "ok"
                return {"content": [{"type": "text", "text": text}]}
            tools = await self.router.all_items(caller, "tools")
            if name == BEGIN_SESSION:
                result = await self.gate.begin_session(view, tools, _string(params, "task"), schemas=modern)
                if not modern:
                    await self._reveal(session, notify)
            else:  # FIND_TOOLS
                arguments = _arguments(params)
                limit = arguments.get("limit", DEFAULT_TOOLS)
                limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else DEFAULT_TOOLS
                result = await self.gate.find_tools(tools, _string(params, "query"), limit)
            audited.outcome = "ok"
            return result

    async def complete(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        """completion/complete: the project's own prompts take no arguments (nothing to complete)."""
        ref = params.get("ref")
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt":
            view = await self.router.project(caller)
            if any(p.name == ref.get("name") for p in view.prompts):
                return {"completion": {"values": [], "hasMore": False}}
        return await self.router.complete(caller, params)

    # ---- prompts/get and resources/read ----------------------------------------------------------

    async def get_prompt(
        self,
        caller: Caller,
        params: dict[str, Any],
        notify: Notify | None,
        *,
        session: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        relay: Relay | None = None,
        modern: bool = False,
    ) -> dict[str, Any]:
        view = await self.router.project(caller)
        own = next((p for p in view.prompts if p.name == params.get("name")), None)
        if own is None:
            return await self.router.get_prompt(
                caller,
                params,
                notify,
                session=session,
                request_id=request_id,
                client_addr=client_addr,
                relay=relay,
            )
        with self.router.audited("prompt_get", caller, own.name, session, request_id, client_addr) as audited:
            audited.outcome = "ok"
            return {
                "description": _prompt_item(own)["description"],
                "messages": [{"role": "user", "content": {"type": "text", "text": own.text}}],
            }

    async def read_resource(
        self,
        caller: Caller,
        params: dict[str, Any],
        notify: Notify | None,
        *,
        session: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        relay: Relay | None = None,
        modern: bool = False,
    ) -> dict[str, Any]:
        uri = params.get("uri")
        page = parse_result_uri(uri) if isinstance(uri, str) else None
        if page is not None:
            with self.router.audited(
                "resource_read", caller, uri, session, request_id, client_addr
            ) as audited:
                record, text = await self.pipeline.page(caller, *page)
                audited.server, audited.outcome = record["server"], "ok"
                return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]}
        server, result = await self.router.read_resource(
            caller,
            params,
            notify,
            session=session,
            request_id=request_id,
            client_addr=client_addr,
            relay=relay,
        )
        view = await self.router.project(caller)
        return await self.pipeline.resource_result(caller, view, server, str(uri), result)
