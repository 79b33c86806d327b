"""Words for the gate's lexical matching (DESIGN §10), the same for documents and queries.

A text becomes words by splitting on anything that is not a letter or digit (so `__`, `_`, `-`, `.`,
`/`, spaces), on camelCase and acronym boundaries (`getHTTPStatus` → get, http, status) and between
letters and digits (`utf8` → utf, 8); words are lowercased, English stopwords (bm25s's NLTK list) are
dropped, and the rest go through PyStemmer's English Snowball stemmer, so "listing", "lists" and
`list_*` meet.

Tools and agents name the same operations with different words ("folder" and "directory", "remove"
and "delete"), which BM25 alone cannot bridge. Two small tables close the commonest gaps, generic to
tool vocabulary rather than to any server: `_ABBREVIATIONS` spells out a word (`pid` → process id,
`stderr` → standard error) before stopwords and stems; `_SYNONYMS` maps each stem of a group to the
group's first, so both sides of a comparison meet on one term. Both apply to documents and queries
alike. Semantic ranking (embeddings) is the general answer; these tables are the cheap one.

Both the tool ranker and the prompt selection use `terms`, so a tag, a tool name and a
task sentence are compared as the same kind of thing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import Stemmer  # type: ignore[import-not-found]  # PyStemmer: a C extension without stubs

_CHUNK = re.compile(r"[^\W_]+")  # runs of letters and digits, any script
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# One stemmer per process: PyStemmer keeps its own cache and is not shared across threads here.
_STEMMER = Stemmer.Stemmer("english")

_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "pid": ("process", "id"),
    "env": ("environment",),
    "stderr": ("standard", "error"),
    "stdout": ("standard", "output"),
    "stdin": ("standard", "input"),
    "repo": ("repository",),
    "dir": ("directory",),
    "cwd": ("current", "directory"),
    "mkdir": ("create", "directory"),
    "rm": ("delete",),
    "mv": ("move",),
    "ls": ("list",),
    "tz": ("timezone",),
    "db": ("database",),
    "config": ("configuration",),
    "info": ("information",),
}
# Groups of words that name one operation or thing in tool descriptions and in tasks; the first
# word of a group is the one its other words become.
_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("delete", "remove", "drop", "erase", "forget", "destroy", "discard", "unlink", "purge"),
    ("create", "make", "new", "generate"),
    ("write", "save", "overwrite", "persist"),
    ("read", "open", "load", "view", "cat"),
    ("edit", "modify", "change", "alter", "update", "patch", "tweak"),
    ("move", "rename", "relocate"),
    ("search", "find", "look", "lookup", "locate", "grep", "query"),
    ("list", "enumerate"),
    ("fetch", "download", "retrieve", "grab", "scrape", "crawl"),
    ("reset", "undo", "revert", "unstage"),
    ("log", "history"),
    ("compress", "zip", "gzip", "archive", "deflate"),
    ("exit", "quit", "terminate", "kill", "crash", "abort"),
    ("error", "fail", "failure"),
    ("sleep", "wait", "pause"),
    ("switch", "checkout"),
    ("sum", "plus", "total", "addition"),
    ("echo", "repeat"),
    ("directory", "folder"),
    ("image", "picture", "photo", "screenshot", "png", "jpg", "jpeg", "gif"),
    ("size", "big", "bigger", "biggest", "large", "larger", "largest", "huge", "small", "smallest"),
    ("memory", "remember", "memorize", "memorise", "recall"),
    ("observation", "fact", "note"),
    ("entity", "person", "people"),
    ("relation", "relationship", "connection"),
    ("url", "web", "website", "webpage", "internet"),
    ("timezone", "zone"),
)
_CANON = {
    stem: _STEMMER.stemWord(group[0]) for group in _SYNONYMS for stem in _STEMMER.stemWords(list(group))
}


@functools.cache
def _stopwords() -> frozenset[str]:
    # On first use, not at import: importing bm25s loads numpy (~100 ms of import time), which a
    # cold start of mcpd or mcplocal skips unless a project ranks tools or selects prompts.
    from bm25s.stopwords import STOPWORDS_EN_PLUS  # type: ignore[import-untyped]

    return frozenset(STOPWORDS_EN_PLUS)


def split_words(text: str) -> list[str]:
    """The words of `text` (identifiers and prose alike), lowercased, stopwords kept."""
    words: list[str] = []
    for chunk in _CHUNK.findall(text):
        parts = _CAMEL.findall(chunk) if chunk.isascii() else [chunk]
        words += [part.lower() for part in parts]
    return words


def terms(text: str) -> list[str]:
    """The stemmed, stopword-free terms of `text`, in order (repeats kept: BM25 counts them)."""
    words = [part for word in split_words(text) for part in _ABBREVIATIONS.get(word, (word,))]
    stopwords = _stopwords()
    words = [word for word in words if word not in stopwords]
    return [_CANON.get(stem, stem) for stem in _STEMMER.stemWords(words)] if words else []


def terms_of(texts: Iterable[str]) -> list[str]:
    """`terms` of several texts, concatenated."""
    return [term for text in texts for term in terms(text)]
