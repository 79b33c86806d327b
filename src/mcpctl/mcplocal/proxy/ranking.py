"""The gate's ranking of a project's tools for a task or query (DESIGN §10: begin_session, find_tools).

Lexical ranking is BM25 (bm25s, Lucene's variant) over one document per tool: the words of its
exposed name (split on `__`, `_`, `-`, `.`, camelCase and digits; see `tokens`), repeated
`NAME_WEIGHT` times because a name is the densest statement of what a tool does, then its title, its
description, and its inputSchema's property names and descriptions (nested schemas followed to
`_SCHEMA_DEPTH` levels, at most `_SCHEMA_PROPERTIES` properties). Documents and queries get the same
terms (lowercase, stopwords out, Snowball stems, a small thesaurus; see `tokens`). Measured on the
context benchmark (bench/context_tasks.yaml, 59 tasks over 63 real tools): top-5 0.73 without the
thesaurus, 0.93 with it; name weight 1, 2, 3 gave top-1 0.71, 0.73, 0.76 (top-5 0.92, 0.93, 0.93);
k1 and b barely mattered, so bm25s's defaults stay. Every tool is ranked: those BM25 scores 0 follow the
scored ones in their original order, so `limit` is always filled when there are enough tools; ties
keep the original order too.

The built index is kept per tool set (a SHA-256 fingerprint of names, titles, descriptions and
schemas) in an LRU of `_INDEX_CACHE` entries: a project's tool list changes rarely and several
sessions share one ranker. Measured on bench/context_tools.json (63 real tools, one core): building
the documents and the index takes about 12 ms (about 23 ms for 150 tools), ranking a query against a
built index about 1 ms, so the cache is what keeps find_tools cheap. It also holds the tools'
embeddings.

With an embeddings client the ranking is semantic as well. Tool documents are embedded once,
through the pipeline cache when one is given (key `cache_key("embed", identity, text)`, so a restart
or another replica does not embed them again); the cache is probed with a `compute` that raises, so
every document not yet cached goes to the endpoint in one request. The query is embedded on every
call. Tools are ordered by cosine similarity, and that order is fused with BM25's by reciprocal rank
fusion, score = sum of 1/(`RRF_K` + rank), `RRF_K` = 60 (Cormack, Clarke and Buettcher, SIGIR 2009).
Fusion, not embeddings alone: an exact tool name in the query is a certain hit for BM25 and only a
likely one for an embedding. When embedding fails (the client answers None, or raises), the ranking
is BM25 alone, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mcpctl.mcplocal.proxy.tokens import split_words, terms, terms_of

# bm25s and numpy (~100 ms of import time) are imported where they are used: only a project whose
# proxy model ranks tools needs them, and every other cold start of mcpd and mcplocal skips them.
if TYPE_CHECKING:
    import bm25s  # type: ignore[import-untyped]  # no stubs or py.typed
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

Method = Literal["bm25", "bm25+embeddings"]
NAME_WEIGHT = 3
RRF_K = 60
BM25_K1, BM25_B = 1.5, 0.75
_INDEX_CACHE = 4
_SCHEMA_DEPTH = 3
_SCHEMA_PROPERTIES = 64


class EmbeddingsLike(Protocol):
    """An OpenAI-compatible embeddings endpoint (mcplocal's EmbeddingsClient)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """One vector per text, in order; None when the endpoint could not answer."""
        ...


class CacheLike(Protocol):
    """The pipeline cache (mcplocal's FileCache, DESIGN §10)."""

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """The bytes stored under `key`, else `compute()`'s, stored. An exception from `compute`
        propagates and stores nothing."""
        ...


def cache_key(*parts: Any) -> str:
    """A pipeline-cache key: the SHA-256 of the parts as canonical JSON."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RankedTool:
    name: str
    score: float  # BM25 score, or the fused RRF score when method is "bm25+embeddings"
    tool: dict[str, Any] = field(repr=False)
    method: Method = "bm25"


@dataclass
class _Index:
    retriever: bm25s.BM25
    texts: tuple[str, ...]  # what is embedded for each tool
    vectors: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)  # identity → unit rows


class ToolRanker:
    """Ranks MCP tool dicts (as tools/list shows them, names already exposed) for a query."""

    def __init__(
        self,
        embeddings: EmbeddingsLike | None = None,
        cache: CacheLike | None = None,
        identity: str = "",
    ) -> None:
        """`identity` names the embedding model or endpoint, so that cached vectors of one model
        are never used with another's."""
        self._embeddings, self._cache, self._identity = embeddings, cache, identity
        self._indexes: OrderedDict[str, _Index] = OrderedDict()
        self.index_builds = 0  # how many indexes were built (the LRU's misses)
        self.last_method: Method = "bm25"

    async def aclose(self) -> None:
        """Close the embeddings client's connections, if it holds any."""
        close = getattr(self._embeddings, "aclose", None)
        if close is not None:
            await close()

    async def rank(self, query: str, tools: Sequence[dict[str, Any]], limit: int) -> list[RankedTool]:
        """The best `limit` tools for `query`, best first (all of them when fewer)."""
        if not tools or limit <= 0:
            return []
        index = self._index(tools)
        lexical = _bm25_scores(index.retriever, terms(query), len(tools))
        order = _order(lexical)
        method: Method
        scores, method = lexical, "bm25"
        semantic = await self._semantic_scores(query, index) if self._embeddings is not None else None
        if semantic is not None:
            scores, method = _fuse(order, _order(semantic), lexical), "bm25+embeddings"
            order = _order(scores)
        self.last_method = method
        return [RankedTool(str(tools[i]["name"]), float(scores[i]), tools[i], method) for i in order[:limit]]

    def _index(self, tools: Sequence[dict[str, Any]]) -> _Index:
        key = _fingerprint(tools)
        index = self._indexes.get(key)
        if index is not None:
            self._indexes.move_to_end(key)
            return index
        import bm25s

        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        retriever.index([tool_terms(tool) for tool in tools], show_progress=False)
        index = _Index(retriever, tuple(tool_text(tool) for tool in tools))
        self.index_builds += 1
        self._indexes[key] = index
        while len(self._indexes) > _INDEX_CACHE:
            self._indexes.popitem(last=False)
        return index

    async def _semantic_scores(self, query: str, index: _Index) -> npt.NDArray[np.float64] | None:
        import numpy as np

        assert self._embeddings is not None
        try:
            documents = index.vectors.get(self._identity)
            if documents is None:
                documents = await self._document_vectors(index.texts)
                if documents is None:
                    return None
                index.vectors[self._identity] = documents
            answer = await self._embeddings.embed([query])
            if not answer or len(answer[0]) != documents.shape[1]:
                return None
            query_vector = _unit(np.asarray([answer[0]], dtype=np.float32))[0]
            similarity: npt.NDArray[np.float64] = (documents @ query_vector).astype(np.float64)
            return similarity
        except Exception:
            logger.exception("semantic ranking failed; ranking by BM25 alone")
            return None

    async def _document_vectors(self, texts: Sequence[str]) -> npt.NDArray[np.float32] | None:
        """Unit vectors of the tool documents, one embeddings request for all those not cached."""
        import numpy as np

        assert self._embeddings is not None
        keys = [cache_key("embed", self._identity, text) for text in texts]
        found: dict[int, bytes] = {}
        if self._cache is not None:
            for i, key in enumerate(keys):
                with contextlib.suppress(_NotCached):
                    found[i] = await self._cache.get_or_compute(key, _not_cached)
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = await self._embeddings.embed([texts[i] for i in missing])
            if fresh is None or len(fresh) != len(missing):
                return None
            for i, vector in zip(missing, fresh, strict=True):
                found[i] = np.asarray(vector, dtype=np.float32).tobytes()
                if self._cache is not None:
                    await self._cache.get_or_compute(keys[i], _constant(found[i]))
        rows = [np.frombuffer(found[i], dtype=np.float32) for i in range(len(texts))]
        if len({row.shape for row in rows}) != 1:
            return None
        return _unit(np.stack(rows))


class _NotCached(Exception):
    """Raised by the probe `compute`: the cache had nothing under the key."""


async def _not_cached() -> bytes:
    raise _NotCached


def _constant(value: bytes) -> Callable[[], Awaitable[bytes]]:
    async def compute() -> bytes:
        return value

    return compute


def _unit(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
    return unit


def _bm25_scores(retriever: bm25s.BM25, query_terms: list[str], size: int) -> npt.NDArray[np.float64]:
    import numpy as np

    known = [term for term in query_terms if term in retriever.vocab_dict]
    if not known:
        return np.zeros(size)
    return np.asarray(retriever.get_scores(known), dtype=np.float64)


def _order(scores: npt.NDArray[np.float64]) -> list[int]:
    """Indexes by score, highest first; ties (zeros included) in original order."""
    import numpy as np

    return [int(i) for i in np.argsort(-scores, kind="stable")]


def _fuse(lexical: list[int], semantic: list[int], bm25: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Reciprocal rank fusion. A tool BM25 did not match at all gets no lexical term: its place in
    the lexical order is only its position in the list."""
    import numpy as np

    fused = np.zeros(len(semantic))
    for rank, i in enumerate(semantic, start=1):
        fused[i] += 1 / (RRF_K + rank)
    for rank, i in enumerate(lexical, start=1):
        if bm25[i] > 0:
            fused[i] += 1 / (RRF_K + rank)
    return fused


def _fingerprint(tools: Sequence[dict[str, Any]]) -> str:
    return cache_key(
        [[t.get("name"), t.get("title"), t.get("description"), t.get("inputSchema")] for t in tools]
    )


def tool_terms(tool: dict[str, Any]) -> list[str]:
    """The BM25 document of a tool: its name's terms `NAME_WEIGHT` times, then title, description,
    and the inputSchema's property names and descriptions."""
    return terms(str(tool.get("name", ""))) * NAME_WEIGHT + terms_of(_texts(tool))


def tool_text(tool: dict[str, Any]) -> str:
    """What is embedded for a tool: name words, title, description and parameters, as prose."""
    words = " ".join(split_words(str(tool.get("name", ""))))
    return "\n".join([words, *_texts(tool)])


def _texts(tool: dict[str, Any]) -> list[str]:
    texts = [str(tool[key]) for key in ("title", "description") if isinstance(tool.get(key), str)]
    schema = tool.get("inputSchema")
    if isinstance(schema, dict):
        budget = [_SCHEMA_PROPERTIES]
        _schema_texts(schema, _SCHEMA_DEPTH, budget, texts)
    return texts


def _schema_texts(schema: dict[str, Any], depth: int, budget: list[int], out: list[str]) -> None:
    """Property names (as words) and descriptions of `schema`, following nested objects and arrays
    `depth` levels down, at most `budget[0]` properties in all."""
    properties = schema.get("properties")
    if depth <= 0 or not isinstance(properties, dict):
        return
    for name, sub in properties.items():
        if budget[0] <= 0:
            return
        budget[0] -= 1
        out.append(" ".join(split_words(str(name))))
        if not isinstance(sub, dict):
            continue
        if isinstance(sub.get("description"), str):
            out.append(sub["description"])
        for nested in (sub, sub.get("items")):
            if isinstance(nested, dict):
                _schema_texts(nested, depth - 1, budget, out)
