"""The gate's tool ranking (DESIGN §10): BM25 over tool documents, index cache, embeddings fused by
RRF with fallback to BM25, and the context benchmark's task set over the real servers' tools."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcpctl.mcplocal.proxy.ranking import ToolRanker, cache_key
from mcpctl.mcplocal.proxy.tokens import split_words, terms

BENCH = Path(__file__).resolve().parents[2] / "bench"
TOP5_TARGET = 0.90

pytestmark = pytest.mark.anyio


def _tool(name: str, description: str = "", **properties: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
    }


TOOLS = [
    _tool("time__get_current_time", "Get current time in a specific timezone", timezone={"type": "string"}),
    _tool(
        "git__git_log", "Shows the commit logs", repo_path={"type": "string"}, max_count={"type": "integer"}
    ),
    _tool(
        "git__git_branch", "List Git branches", repo_path={"type": "string"}, branch_type={"type": "string"}
    ),
    _tool("git__git_status", "Shows the working tree status", repo_path={"type": "string"}),
    _tool(
        "everything__get-sum", "Returns the sum of two numbers", a={"type": "number"}, b={"type": "number"}
    ),
    _tool("filesystem__list_directory", "Get a detailed listing of all files and directories in a path"),
    _tool(
        "filesystem__read_text_file", "Read the complete contents of a file as text", path={"type": "string"}
    ),
    _tool(
        "memory__create_entities",
        "Create multiple new entities in the knowledge graph",
        entities={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"observations": {"type": "array", "description": "Facts about the entity"}},
            },
        },
    ),
]


def _names(ranked: Sequence[Any]) -> list[str]:
    return [r.name for r in ranked]


def test_names_split_on_separators_camel_case_and_digits() -> None:
    assert split_words("everything__get-sum") == ["everything", "get", "sum"]
    assert split_words("getHTTPStatus2xx read.file") == ["get", "http", "status", "2", "xx", "read", "file"]
    assert terms("Listing the Files") == terms("list file")


async def test_an_exact_tool_name_ranks_its_tool_first() -> None:
    ranked = await ToolRanker().rank("git_log", TOOLS, 3)
    assert ranked[0].name == "git__git_log"
    assert ranked[0].score > ranked[1].score


async def test_inflected_words_meet_the_tool_by_their_stem() -> None:
    assert _names(await ToolRanker().rank("listing my branches", TOOLS, 1)) == ["git__git_branch"]
    assert _names(await ToolRanker().rank("adding up numbers", TOOLS, 1)) == ["everything__get-sum"]


async def test_thesaurus_words_meet_the_tool_vocabulary() -> None:
    assert _names(await ToolRanker().rank("what is in this folder", TOOLS, 1)) == [
        "filesystem__list_directory"
    ]


async def test_schema_property_names_and_nested_descriptions_are_searched() -> None:
    twins = [
        _tool("a__convert", "Convert a value", unit={"type": "string"}),
        _tool("b__convert", "Convert a value", targetTimezone={"type": "string"}),
    ]
    assert _names(await ToolRanker().rank("timezone", twins, 2)) == ["b__convert", "a__convert"]
    # "facts" occurs only in a property description two levels down (array items).
    assert _names(await ToolRanker().rank("store facts", TOOLS, 1)) == ["memory__create_entities"]


async def test_limit_is_filled_with_unmatched_tools_in_original_order() -> None:
    ranked = await ToolRanker().rank("branches", TOOLS, 4)
    assert ranked[0].name == "git__git_branch"
    assert _names(ranked[1:]) == [t["name"] for t in TOOLS if t["name"] != "git__git_branch"][:3]
    assert [r.score for r in ranked[1:]] == [0.0, 0.0, 0.0]
    nothing = await ToolRanker().rank("zzz qqq", TOOLS, 100)
    assert _names(nothing) == [t["name"] for t in TOOLS]
    assert await ToolRanker().rank("", TOOLS, 0) == []
    assert await ToolRanker().rank("git", [], 5) == []


async def test_ranking_is_deterministic_and_ties_keep_original_order() -> None:
    same = [_tool(f"srv__tool{i}", "Shows the commit logs") for i in range(6)]
    assert _names(await ToolRanker().rank("commit logs", same, 6)) == [t["name"] for t in same]
    first = await ToolRanker().rank("read a file in the repository", TOOLS, 8)
    again = [await ToolRanker().rank("read a file in the repository", TOOLS, 8) for _ in range(3)]
    assert all(_names(other) == _names(first) for other in again)
    assert all(r.method == "bm25" for r in first)
    assert first[0].tool is next(t for t in TOOLS if t["name"] == first[0].name)


async def test_the_index_is_built_once_per_tool_set_and_evicted_least_recently_used() -> None:
    ranker = ToolRanker()
    await ranker.rank("git", TOOLS, 3)
    await ranker.rank("time", [dict(t) for t in TOOLS], 3)  # equal content, other objects
    assert ranker.index_builds == 1
    changed = [*TOOLS[:-1], {**TOOLS[-1], "description": "Something else"}]
    await ranker.rank("git", changed, 3)
    assert ranker.index_builds == 2
    for i in range(4):
        await ranker.rank("git", TOOLS[: i + 1], 1)
    assert ranker.index_builds == 6
    await ranker.rank("git", TOOLS, 3)  # pushed out by four newer sets
    assert ranker.index_builds == 7


class FakeEmbeddings:
    """Vectors chosen by the test: a text's vector is the sum of the axes whose keyword it contains."""

    def __init__(self, axes: dict[str, int], dims: int = 3, fail_on: str | None = None) -> None:
        self.axes, self.dims, self.fail_on = axes, dims, fail_on
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        self.calls.append(list(texts))
        if self.fail_on is not None and any(self.fail_on in text for text in texts):
            return None
        vectors = []
        for text in texts:
            vector = [0.0] * self.dims
            for keyword, axis in self.axes.items():
                if keyword in text.lower():
                    vector[axis] += 1.0
            vectors.append(vector)
        return vectors


class DictCache:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        if key not in self.data:
            self.data[key] = await compute()
        return self.data[key]


SEMANTIC_TOOLS = [
    _tool("s__alpha", "Shows the commit logs"),
    _tool("s__beta", "Returns the sum of two numbers"),
    _tool("s__gamma", "Read a file"),
]
# "zebra crossing" matches no tool lexically; the embedding puts gamma and the query together.
AXES = {"gamma": 0, "read": 0, "zebra crossing": 0, "commit": 1, "sum": 2}


async def test_embeddings_reach_a_tool_bm25_cannot_see() -> None:
    embeddings = FakeEmbeddings(AXES)
    ranked = await ToolRanker(embeddings).rank("zebra crossing", SEMANTIC_TOOLS, 3)
    assert ranked[0].name == "s__gamma"
    assert {r.method for r in ranked} == {"bm25+embeddings"}


async def test_a_tool_both_methods_rank_first_stays_first_with_fused_scores() -> None:
    embeddings = FakeEmbeddings(AXES)
    ranker = ToolRanker(embeddings)
    ranked = await ranker.rank("sum of numbers", SEMANTIC_TOOLS, 3)
    assert ranked[0].name == "s__beta"
    assert ranked[0].score == pytest.approx(2 / 61)  # rank 1 in both: 1/(60+1) twice
    assert ranker.last_method == "bm25+embeddings"


async def test_failed_embeddings_fall_back_to_bm25_alone() -> None:
    for embeddings in (FakeEmbeddings(AXES, fail_on="zebra"), FakeEmbeddings(AXES, fail_on="commit")):
        ranker = ToolRanker(embeddings)
        ranked = await ranker.rank("zebra crossing", SEMANTIC_TOOLS, 3)
        assert _names(ranked) == _names(await ToolRanker().rank("zebra crossing", SEMANTIC_TOOLS, 3))
        assert ranker.last_method == "bm25"
        assert {r.method for r in ranked} == {"bm25"}


async def test_an_embeddings_client_that_raises_is_a_fallback_not_an_error() -> None:
    class Broken:
        async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
            raise RuntimeError("endpoint down")

    ranker = ToolRanker(Broken())
    assert (await ranker.rank("sum", SEMANTIC_TOOLS, 1))[0].name == "s__beta"
    assert ranker.last_method == "bm25"


async def test_tool_documents_are_embedded_once_in_one_batch_then_come_from_the_cache() -> None:
    cache = DictCache()
    first = FakeEmbeddings(AXES)
    await ToolRanker(first, cache, identity="model-a").rank("zebra crossing", SEMANTIC_TOOLS, 3)
    assert [len(call) for call in first.calls] == [3, 1]  # documents in one request, then the query
    assert len(cache.data) == 3

    second = FakeEmbeddings(AXES)  # a new ranker (a restart, another replica) sharing the cache
    ranked = await ToolRanker(second, cache, identity="model-a").rank("zebra crossing", SEMANTIC_TOOLS, 3)
    assert second.calls == [["zebra crossing"]]
    assert ranked[0].name == "s__gamma"

    other_model = FakeEmbeddings(AXES)
    await ToolRanker(other_model, cache, identity="model-b").rank("sum", SEMANTIC_TOOLS, 3)
    assert [len(call) for call in other_model.calls] == [3, 1]


async def test_the_same_ranker_embeds_documents_once_without_a_cache() -> None:
    embeddings = FakeEmbeddings(AXES)
    ranker = ToolRanker(embeddings)
    await ranker.rank("sum", SEMANTIC_TOOLS, 3)
    await ranker.rank("commit", SEMANTIC_TOOLS, 3)
    assert [len(call) for call in embeddings.calls] == [3, 1, 1]


def test_cache_keys_are_canonical() -> None:
    assert cache_key("embed", "m", {"b": 1, "a": 2}) == cache_key("embed", "m", {"a": 2, "b": 1})
    assert cache_key("embed", "m", "x") != cache_key("embed", "n", "x")


def _top_k(ranked: list[list[str]], targets: list[list[str]], k: int) -> float:
    return sum(
        any(name in want for name in got[:k]) for got, want in zip(ranked, targets, strict=True)
    ) / len(ranked)


async def test_bm25_finds_the_right_tool_in_the_top_5_for_90_percent_of_the_benchmark_tasks() -> None:
    snapshot = json.loads((BENCH / "context_tools.json").read_text())
    tools = snapshot["tools"]
    tasks = yaml.safe_load((BENCH / "context_tasks.yaml").read_text())
    names = {tool["name"] for tool in tools}
    ranker = ToolRanker()
    report = []
    for key in ("tasks", "holdout_tasks"):
        entries = tasks[key]
        targets = [entry["targets"] for entry in entries]
        assert all(set(want) <= names for want in targets), "a target is not a tool of the snapshot"
        ranked = [_names(await ranker.rank(entry["task"], tools, 5)) for entry in entries]
        top1, top5 = _top_k(ranked, targets, 1), _top_k(ranked, targets, 5)
        report.append((key, len(entries), top1, top5))
    print(f"\n{len(tools)} tools from {snapshot['servers']}, method {ranker.last_method}")
    for key, count, top1, top5 in report:
        print(f"{key}: {count} tasks, top-1 {top1:.3f}, top-5 {top5:.3f}")
    key, count, _, top5 = report[0]
    assert count >= 45
    assert top5 >= TOP5_TARGET
