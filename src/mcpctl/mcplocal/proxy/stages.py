"""Content stages (DESIGN §10): `async def stage(content, ctx) -> content`, applied in the order a
proxy model lists them to tool results and resource reads.

Built in: `section-split`, `paginate`, `summarize` (summary and page titles through the configured
OpenAI-compatible chat endpoint; without one, or when it fails, the content goes on unchanged).
Custom stages are Python callables registered under the entry point group `mcpctl.stages`, named
by their entry point; a proxy model naming a stage this process does not have fails the call
(fail closed: a redaction stage that is missing must not let content through).

`ctx.cache.get_or_compute(key, fn)` is the pipeline cache (FileCache) scoped to the stage: the key
is hashed with the stage's type and config, so a hit means the same work on the same input, and a
hit skips `fn` entirely (no LLM call).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mcpctl.core.proxymodels import (
    DEFAULT_PAGE_BYTES,
    ENTRY_POINT_GROUP,
    PAGINATE,
    SECTION_SPLIT,
    SUMMARIZE,
    UNRESOLVED,
    Stage,
)
from mcpctl.mcplocal.filecache import FileCache, cache_key
from mcpctl.mcplocal.proxy.content import Content, Page, paginate, split_sections

logger = logging.getLogger(__name__)

StageFn = Callable[[Content, "StageContext"], Awaitable[Content]]

# What the summarize stage hands the LLM at most (the head of each page, then the head of the text).
SUMMARY_INPUT_CHARS = 24_000
TITLE_EXCERPT_CHARS = 400
MAX_TITLED_PAGES = 64
# Pages kept of one result (32 MiB at the default 16 KiB a page); what is past them is not served.
MAX_PAGES = 2048
INLINE_BYTES = 256 * 1024


class Chat(Protocol):
    async def complete(self, system: str, user: str, *, max_tokens: int) -> str | None: ...


class MissingStage(Exception):
    """A proxy model names a stage this process does not have."""


class StageCache:
    """The pipeline cache as one stage sees it: keys are scoped by the stage's type and config;
    values are anything JSON can carry."""

    def __init__(self, cache: FileCache | None, stage: Stage):
        self._cache, self._scope = cache, (stage.type, stage.config)

    async def get_or_compute(self, name: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
        if self._cache is None:
            return await compute()

        async def encoded() -> bytes:
            return json.dumps(await compute(), ensure_ascii=False).encode()

        return json.loads(await self._cache.get_or_compute(cache_key(*self._scope, name), encoded))


@dataclass(frozen=True)
class StageContext:
    stage: Stage
    cache: StageCache
    chat: Chat | None = None

    @property
    def config(self) -> Mapping[str, Any]:
        return self.stage.config


def _page_bytes(ctx: StageContext) -> int:
    value = ctx.config.get("pageBytes", DEFAULT_PAGE_BYTES)
    return value if isinstance(value, int) and value > 0 else DEFAULT_PAGE_BYTES


async def _off_the_loop(content: Content, work: Callable[[], Any]) -> Any:
    """CPU work on a long text runs in a thread: the endpoint (in mcpd, the whole daemon) goes on."""
    return await asyncio.to_thread(work) if content.size > INLINE_BYTES else work()


async def section_split(content: Content, ctx: StageContext) -> Content:
    """Markdown or JSON over `pageBytes` (default 16 KiB) split on headings or top-level keys."""
    if content.size <= _page_bytes(ctx):
        return content
    return content.with_(sections=await _off_the_loop(content, lambda: split_sections(content.text)))


async def paginate_stage(content: Content, ctx: StageContext) -> Content:
    """Content over `pageBytes` (default 16 KiB) in pages of at most that many bytes; at most
    MAX_PAGES are kept (`metadata["dropped"]`: the bytes after them)."""
    page_bytes = _page_bytes(ctx)
    if content.size <= page_bytes:
        return content
    pages = await _off_the_loop(content, lambda: paginate(content, page_bytes))
    if len(pages) <= MAX_PAGES:
        return content.with_(pages=pages)
    dropped = sum(len(page.text.encode()) for page in pages[MAX_PAGES:])
    return content.with_(pages=pages[:MAX_PAGES], metadata={**content.metadata, "dropped": str(dropped)})


async def summarize(content: Content, ctx: StageContext) -> Content:
    """A summary of paged content and a title for each untitled page, from the chat endpoint: two
    completions per distinct content, cached; nothing when no chat endpoint is configured."""
    if ctx.chat is None or not content.pages or len(content.pages) < 2:
        return content
    chat = ctx.chat
    excerpt = _excerpt(content)

    async def summary() -> str | None:
        return await chat.complete(
            "You summarize a tool's long output for an AI agent that will read it page by page. "
            "Say in at most five sentences what it contains and where to look.",
            excerpt,
            max_tokens=300,
        )

    written = await _unless_failed(ctx.cache, ("summary", content.text), summary)
    pages = content.pages
    untitled = [n for n, page in enumerate(pages[:MAX_TITLED_PAGES]) if page.title is None]
    if untitled:
        titles = await _unless_failed(
            ctx.cache, ("titles", content.text), lambda: _titles(chat, pages, untitled)
        )
        if isinstance(titles, dict):
            pages = tuple(Page(page.text, page.title or titles.get(str(n))) for n, page in enumerate(pages))
    return content.with_(summary=written if isinstance(written, str) else None, pages=pages)


class _NoAnswer(Exception):
    """The LLM gave no answer: nothing is cached, the next call tries again."""


async def _unless_failed(cache: StageCache, name: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
    async def answered() -> Any:
        value = await compute()
        if value is None:
            raise _NoAnswer
        return value

    try:
        return await cache.get_or_compute(name, answered)
    except _NoAnswer:
        return None


async def _titles(chat: Chat, pages: tuple[Page, ...], numbers: list[int]) -> dict[str, str] | None:
    listing = "\n\n".join(f"[{n + 1}]\n{pages[n].text[:TITLE_EXCERPT_CHARS]}" for n in numbers)
    answer = await chat.complete(
        "Give each numbered excerpt a title of at most eight words. Answer one line per excerpt, "
        "as `[number] title`, nothing else.",
        listing,
        max_tokens=20 * len(numbers) + 20,
    )
    if answer is None:
        return None
    titles: dict[str, str] = {}  # an answer in another form: no titles (kept: asking again won't help)
    for line in answer.splitlines():
        line = line.strip()
        if line.startswith("[") and "]" in line:
            number, _, title = line[1:].partition("]")
            if number.strip().isdigit() and title.strip():
                titles[str(int(number) - 1)] = title.strip()[:120]
    return titles


def _excerpt(content: Content) -> str:
    """The head of each page, then as much of the text as fits SUMMARY_INPUT_CHARS."""
    pages = content.pages or ()
    share = max(200, SUMMARY_INPUT_CHARS // max(1, len(pages)))
    parts = [f"--- page {n} ---\n{page.text[:share]}" for n, page in enumerate(pages, 1)]
    return "\n".join(parts)[:SUMMARY_INPUT_CHARS]


BUILT_IN_STAGES: dict[str, StageFn] = {
    SECTION_SPLIT: section_split,
    PAGINATE: paginate_stage,
    SUMMARIZE: summarize,
}


class Stages:
    """Stage callables by type: the built-ins, then entry points of group `mcpctl.stages`."""

    def __init__(self) -> None:
        self._loaded: dict[str, StageFn] = dict(BUILT_IN_STAGES)

    def get(self, stage_type: str) -> StageFn:
        if stage_type == UNRESOLVED:
            raise MissingStage("the project's proxy model does not exist (name one that does)")
        found = self._loaded.get(stage_type)
        if found is not None:
            return found
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry.name == stage_type:
                loaded = entry.load()
                if not callable(loaded):
                    raise MissingStage(f"entry point {entry.value} of stage {stage_type!r} is not callable")
                self._loaded[stage_type] = loaded
                return loaded  # type: ignore[no-any-return]
        raise MissingStage(
            f"stage {stage_type!r} is not installed here (entry point group {ENTRY_POINT_GROUP})"
        )
