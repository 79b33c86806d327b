"""What the content stages work on (DESIGN §10): a large tool result's or resource's text, split
into sections and pages, with a summary and page titles when an LLM is configured.

The splitting is plain and deterministic: JSON objects split on their top-level keys, markdown on
its headings (outside code fences), anything else on line boundaries; pages are packed from whole
sections where they fit and never cut a UTF-8 character.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Form = Literal["json", "markdown", "text"]

# Longer content is paged as plain text: splitting costs a parse of the whole text.
MAX_SPLIT_BYTES = 8 * 1024 * 1024

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Section:
    title: str | None
    text: str


@dataclass(frozen=True)
class Page:
    text: str
    title: str | None = None


@dataclass(frozen=True)
class Content:
    """A result's text on its way through the stages. `server`/`target` say where it came from
    (for titles and for custom stages); `pages` is None until `paginate` ran."""

    text: str
    server: str | None = None
    target: str | None = None
    sections: tuple[Section, ...] = ()
    pages: tuple[Page, ...] | None = None
    summary: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.text.encode())

    @property
    def form(self) -> Form:
        return form_of(self.text)

    def with_(self, **changes: object) -> Content:
        return replace(self, **changes)  # type: ignore[arg-type]


def _json(text: str) -> Any:
    """The JSON value the text is, else _NOT_JSON (too deep to parse counts as not JSON)."""
    if text.lstrip()[:1] not in ("{", "["):
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


_NOT_JSON = object()


def form_of(text: str) -> Form:
    if _json(text) is not _NOT_JSON:
        return "json"
    if any(_HEADING.match(line) for line in text.splitlines()[:2000]):
        return "markdown"
    return "text"


def split_sections(text: str) -> tuple[Section, ...]:
    """Sections of a JSON object (one per top-level key, written compactly: never larger than the
    key's part of the text, however deep) or of markdown (one per heading, the text before the
    first heading untitled); () when the text has fewer than two, or is longer than MAX_SPLIT_BYTES."""
    if len(text) > MAX_SPLIT_BYTES:
        return ()
    value = _json(text)
    if value is not _NOT_JSON:
        if not isinstance(value, dict) or len(value) < 2:
            return ()
        try:
            return tuple(
                Section(str(key), json.dumps({key: item}, ensure_ascii=False, separators=(",", ":")))
                for key, item in value.items()
            )
        except RecursionError:
            return ()
    if not any(_HEADING.match(line) for line in text.splitlines()[:2000]):
        return ()
    sections: list[Section] = []
    title: str | None = None
    lines: list[str] = []
    fenced = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line.rstrip("\n"))
        if heading is not None:
            if lines:
                sections.append(Section(title, "".join(lines)))
            title, lines = heading.group(2), [line]
            continue
        lines.append(line)
    if lines:
        sections.append(Section(title, "".join(lines)))
    return tuple(sections) if len(sections) >= 2 else ()


def _cut(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut after a newline where one is near the
    end of a piece (else at a character boundary)."""
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        if end < len(data):
            newline = data.rfind(b"\n", start, end)
            if newline >= start + limit // 2:
                end = newline + 1
            while end > start and (data[end] & 0xC0) == 0x80:  # not inside a UTF-8 sequence
                end -= 1
            if end == start:  # a bound smaller than one character: the character whole
                end = start + 1
                while end < len(data) and (data[end] & 0xC0) == 0x80:
                    end += 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


def paginate(content: Content, page_bytes: int) -> tuple[Page, ...]:
    """Pages of at most `page_bytes`: whole sections packed in order where they fit (a page titled
    by its first and last section), a longer section cut on its own; plain text cut on lines."""
    if not content.sections:
        return tuple(Page(piece) for piece in _cut(content.text, page_bytes))
    pages: list[Page] = []
    texts: list[str] = []
    titles: list[str] = []
    size = 0

    def close() -> None:
        nonlocal texts, titles, size
        if texts:
            named = [t for t in titles if t]
            title = None if not named else named[0] if len(named) == 1 else f"{named[0]} … {named[-1]}"
            pages.append(Page("".join(texts), title))
        texts, titles, size = [], [], 0

    for section in content.sections:
        length = len(section.text.encode())
        if length > page_bytes:
            close()
            pieces = _cut(section.text, page_bytes)
            for number, piece in enumerate(pieces, 1):
                title = f"{section.title} ({number}/{len(pieces)})" if section.title else None
                pages.append(Page(piece, title))
            continue
        if size + length > page_bytes:
            close()
        texts.append(section.text)
        titles.append(section.title or "")
        size += length
    close()
    return tuple(pages)


def table_of_contents(sections: tuple[Section, ...], pages: tuple[Page, ...], budget: int) -> str:
    """One line per page (its title, else its first section's), within `budget` bytes."""
    lines: list[str] = []
    used = 0
    for number, page in enumerate(pages, 1):
        title = page.title or _first_line(page.text)
        line = f"  page {number}: {title}\n"
        if used + len(line.encode()) > budget:
            lines.append(f"  … {len(pages) - number + 1} more pages\n")
            break
        lines.append(line)
        used += len(line.encode())
    return "".join(lines)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:80]
    return "(blank)"
