"""The content pipeline (DESIGN §10): a project's content stages applied to tool results and
resource reads, and the pages of a paged result served back from the pipeline cache.

A result whose text outgrows `pageBytes` reaches the client as its first page, headed by how big
it is, its summary and a table of contents when there are, and how to read the rest: the meta-tool
`read_page(resultId, page)`, or resources/read of `mcpctl://results/<resultId>/<page>` (also given
as `resource_link` items). Pages are read from the cache with no upstream call.

Left alone: error results, and results with `structuredContent` (a tool with an outputSchema
promises structured output; the client validates it and must get it whole).

Who may read a page: each stored page names the project and the server it came from; a caller of
another project, or whose token does not reach that server, is told the result is unknown, as if
it did not exist. The resultId is a hash of (project, server, stages, text): the same result
stored again is found, not stored twice, and an id cannot be guessed without the text.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from mcpctl.core.proxymodels import BUILT_IN_STAGE_TYPES, GATE, Stage
from mcpctl.mcplocal.filecache import FileCache, cache_key
from mcpctl.mcplocal.ports import Caller, ProjectView
from mcpctl.mcplocal.proxy.content import Content, Page, table_of_contents
from mcpctl.mcplocal.proxy.stages import Chat, MissingStage, StageCache, StageContext, StageFn, Stages

logger = logging.getLogger(__name__)

RESULTS_SCHEME = "mcpctl://results/"
TOC_BYTES = 2048
MAX_PAGE_LINKS = 8


def content_stages(view: ProjectView) -> tuple[Stage, ...]:
    return tuple(stage for stage in view.stages if stage.type != GATE)


def result_uri(result_id: str, page: int) -> str:
    return f"{RESULTS_SCHEME}{result_id}/{page}"


def parse_result_uri(uri: str) -> tuple[str, int] | None:
    if not uri.startswith(RESULTS_SCHEME):
        return None
    result_id, _, page = uri[len(RESULTS_SCHEME) :].partition("/")
    if not result_id or not (page.isascii() and page.isdigit()) or len(page) > 9:
        return None
    return result_id, int(page)


class ContentPipeline:
    def __init__(self, cache: FileCache | None, chat: Chat | None, stages: Stages | None = None):
        self.cache, self.chat, self.stages = cache, chat, stages or Stages()

    async def aclose(self) -> None:
        close = getattr(self.chat, "aclose", None)
        if close is not None:
            await close()

    # ---- applying the stages ----------------------------------------------------------------------

    def _resolved(self, stages: tuple[Stage, ...]) -> list[tuple[Stage, StageFn]]:
        """Every stage's callable, looked up before any content is touched: MissingStage when one is
        not here, whatever the result is (fail closed)."""
        return [(stage, self.stages.get(stage.type)) for stage in stages]

    async def _run(self, stages: list[tuple[Stage, StageFn]], content: Content) -> Content:
        for stage, function in stages:
            content = await function(content, StageContext(stage, StageCache(self.cache, stage), self.chat))
        return content

    async def _custom(self, stages: list[tuple[Stage, StageFn]], text: str, server: str, target: str) -> str:
        """A text that is not paged (an error's, a structured result's, an embedded resource's), through
        the custom stages alone."""
        custom = [(stage, fn) for stage, fn in stages if stage.type not in BUILT_IN_STAGE_TYPES]
        return (await self._run(custom, Content(text, server, target))).text if custom else text

    async def _embedded(
        self, stages: list[tuple[Stage, StageFn]], items: list[Any], server: str, target: str
    ) -> list[Any]:
        """Items other than text: embedded resources' text goes through the custom stages."""
        out: list[Any] = []
        for item in items:
            resource = (
                item.get("resource") if isinstance(item, dict) and item.get("type") == "resource" else None
            )
            if isinstance(resource, dict) and isinstance(resource.get("text"), str):
                text = await self._custom(stages, resource["text"], server, target)
                item = {**item, "resource": {**resource, "text": text}} if text != resource["text"] else item
            out.append(item)
        return out

    async def tool_result(
        self, caller: Caller, view: ProjectView, server: str, target: str, result: dict[str, Any]
    ) -> dict[str, Any]:
        """The result through the project's content stages. Error results and structured results
        are not paged (the client validates structured output whole), but their texts, like embedded
        resources' texts, go through the custom stages; structuredContent and binary data do not."""
        if not content_stages(view):
            return result
        try:
            stages = self._resolved(content_stages(view))
        except MissingStage as exc:
            logger.warning("project %s: %s", view.name, exc)
            return {
                "content": [{"type": "text", "text": f"proxy model {view.proxy_model!r}: {exc}"}],
                "isError": True,
            }
        items = result.get("content")
        if not isinstance(items, list):
            return result
        is_text = [isinstance(item, dict) and item.get("type") == "text" for item in items]
        others = await self._embedded(
            stages, [i for i, t in zip(items, is_text, strict=True) if not t], server, target
        )
        texts = [str(item.get("text", "")) for item, t in zip(items, is_text, strict=True) if t]
        if result.get("isError") or "structuredContent" in result or not texts:
            changed = [await self._custom(stages, text, server, target) for text in texts]
            merged = iter(changed)
            rest = iter(others)
            rewritten = [
                {**item, "text": next(merged)} if t else next(rest)
                for item, t in zip(items, is_text, strict=True)
            ]
            return result if rewritten == items else {**result, "content": rewritten}
        text = "\n".join(texts)
        content = await self._run(stages, Content(text, server, target))
        if not content.pages or len(content.pages) < 2:
            if content.text == text and others == [i for i, t in zip(items, is_text, strict=True) if not t]:
                return result
            return {**result, "content": [{"type": "text", "text": content.text}, *others]}
        result_id = await self._store(caller, view, content_stages(view), content)
        first = {"type": "text", "text": _first_answer(result_id, content)}
        links = [
            {
                "type": "resource_link",
                "uri": result_uri(result_id, number),
                "name": f"page-{number}",
                "title": page.title or f"page {number}",
                "mimeType": "text/plain",
                "size": len(page.text.encode()),
            }
            for number, page in enumerate(content.pages[1 : 1 + MAX_PAGE_LINKS], 2)
        ]
        return {**result, "content": [first, *links, *others]}

    async def resource_result(
        self, caller: Caller, view: ProjectView, server: str, uri: str, result: dict[str, Any]
    ) -> dict[str, Any]:
        """Each long text of a resources/read answer becomes its first page and how to read the rest;
        MCPError when a stage of the project's model is missing (fail closed)."""
        if not content_stages(view):
            return result
        try:
            stages = self._resolved(content_stages(view))
        except MissingStage as exc:
            logger.warning("project %s: %s", view.name, exc)
            raise MCPError(INTERNAL_ERROR, f"proxy model {view.proxy_model!r}: {exc}") from None
        contents = result.get("contents")
        if not isinstance(contents, list):
            return result
        out: list[Any] = []
        for item in contents:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                out.append(item)
                continue
            content = await self._run(stages, Content(item["text"], server, uri))
            if not content.pages or len(content.pages) < 2:
                out.append(item if content.text == item["text"] else {**item, "text": content.text})
                continue
            result_id = await self._store(caller, view, content_stages(view), content)
            out.append({**item, "mimeType": "text/plain", "text": _first_answer(result_id, content)})
        return {**result, "contents": out}

    async def _store(
        self, caller: Caller, view: ProjectView, stages: tuple[Stage, ...], content: Content
    ) -> str:
        pages = content.pages or ()
        result_id = cache_key(
            "result", view.name, content.server, [s.as_spec() for s in stages], content.text
        )[:32]
        if self.cache is None:
            return result_id
        keys = {cache_key("page", result_id, number): number for number in range(1, len(pages) + 1)}
        for page_key in await self.cache.missing(list(keys)):  # stored before, unless evicted since
            number = keys[page_key]
            record = {
                "project": view.name,
                "server": content.server,
                "target": content.target,
                "page": number,
                "pages": len(pages),
                "title": pages[number - 1].title,
                "text": pages[number - 1].text,
            }
            await self.cache.put(page_key, json.dumps(record, ensure_ascii=False).encode())
        return result_id

    # ---- reading pages ----------------------------------------------------------------------------

    async def page(self, caller: Caller, result_id: str, number: int) -> tuple[dict[str, Any], str]:
        """A stored page (its record) and its text as read_page answers it; INVALID_PARAMS when the
        caller may not see it, or it is not (or no longer) cached."""
        raw = await self.cache.get(cache_key("page", result_id, number)) if self.cache is not None else None
        record = json.loads(raw) if raw is not None else None
        if (
            not isinstance(record, dict)
            or record.get("project") != caller.project
            or not isinstance(record.get("server"), str)
            or not caller.may_use(record["server"])
        ):
            raise MCPError(
                INVALID_PARAMS,
                f"Unknown result page: {result_id}/{number} (pages are kept a while: call the tool again)",
            )
        pages = int(record["pages"])
        footer = f"\n---\n[mcpctl] page {number} of {pages} of result {result_id}"
        if number < pages:
            footer += f'; next: read_page(resultId="{result_id}", page={number + 1})'
        return record, str(record["text"]) + footer + "\n"


def _first_answer(result_id: str, content: Content) -> str:
    pages = content.pages or ()
    first: Page = pages[0]
    lines = [
        f"[mcpctl] This result is {content.size:,} bytes, in {len(pages)} pages; page 1 follows.",
    ]
    if "dropped" in content.metadata:
        lines.append(
            f"(Only these pages are kept: the last {int(content.metadata['dropped']):,} bytes are not.)"
        )
    if content.summary:
        lines.append(f"Summary: {content.summary}")
    lines.append("Pages:")
    header = "\n".join(lines) + "\n" + table_of_contents(content.sections, pages, TOC_BYTES)
    how = (
        f'Read another page with read_page(resultId="{result_id}", page=N) (N = 2…{len(pages)}), '
        f"or resources/read {RESULTS_SCHEME}{result_id}/N.\n"
    )
    return f"{header}{how}---\n{first.text}"
