"""The project endpoint's pure parts: naming, the composite cursor, the discovery cache."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpctl.core import cursors
from mcpctl.core.errors import InvalidError
from mcpctl.core.namespacing import NameCollision, Naming
from mcpctl.core.ttlcache import TtlCache

# ---- naming --------------------------------------------------------------------------------------


def test_always_prefixes_in_project_order_and_resolves_back() -> None:
    naming = Naming("always", "__", ("time", "git"))
    index = naming.index({"git": ["log", "status"], "time": ["get_current_time"]})
    assert list(index) == ["time__get_current_time", "git__log", "git__status"]
    assert index["git__log"] == ("git", "log")
    assert naming.resolve("time__get_current_time") == ("time", "get_current_time")
    assert naming.resolve("nope__x") is None
    assert naming.resolve("time__") is None


def test_resolve_prefers_the_longest_server_when_the_separator_is_ambiguous() -> None:
    naming = Naming("always", "-", ("my", "my-srv"))
    assert naming.resolve("my-srv-tool") == ("my-srv", "tool")
    assert naming.resolve("my-tool") == ("my", "tool")


def test_never_keeps_names_and_refuses_collisions_naming_both_servers() -> None:
    naming = Naming("never", "__", ("a", "b"))
    assert naming.index({"a": ["x"], "b": ["y"]}) == {"x": ("a", "x"), "y": ("b", "y")}
    with pytest.raises(NameCollision) as caught:
        naming.index({"a": ["x", "shared"], "b": ["shared"]})
    assert (
        '"shared"' in caught.value.message and '"a"' in caught.value.message and '"b"' in caught.value.message
    )
    assert naming.resolve("x") is None  # never-mode names need the index


# ---- cursors -------------------------------------------------------------------------------------

SERVERS = ("time", "git", "docs")


@given(st.integers(0, 2), st.one_of(st.none(), st.text(max_size=50)))
def test_a_cursor_round_trips(server: int, upstream: str | None) -> None:
    position = cursors.Position(server, upstream)
    assert cursors.decode(SERVERS, cursors.encode(SERVERS, position)) == position


@pytest.mark.parametrize(
    "bad", ["", "!!!", "bm90IGpzb24", cursors.encode(SERVERS, cursors.Position(0, None))[:-3]]
)
def test_garbage_cursors_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidError, match="cursor"):
        cursors.decode(SERVERS, bad)


def test_a_cursor_from_another_server_list_is_stale_and_out_of_range_is_invalid() -> None:
    cursor = cursors.encode(SERVERS, cursors.Position(1, "abc"))
    with pytest.raises(InvalidError, match="stale"):
        cursors.decode(("time", "git"), cursor)
    with pytest.raises(InvalidError, match="invalid"):
        cursors.decode(SERVERS, cursors.encode(SERVERS, cursors.Position(7, None)))


def test_pages_walk_each_server_then_the_next() -> None:
    start = cursors.Position(0, None)
    assert cursors.next_position(SERVERS, start, "p2") == cursors.Position(0, "p2")
    assert cursors.next_position(SERVERS, cursors.Position(0, "p2"), None) == cursors.Position(1, None)
    assert cursors.next_position(SERVERS, cursors.Position(2, None), None) is None


# ---- the cache -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_values_live_for_the_positive_ttl_and_failures_for_the_negative_one() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(positive=60, negative=10, clock=clock)
    calls: list[str] = []

    async def good() -> int:
        calls.append("good")
        return len(calls)

    async def bad() -> int:
        calls.append("bad")
        raise TimeoutError("upstream did not answer")

    assert await cache.get("a", good) == 1
    assert await cache.get("a", good) == 1
    clock.now += 61
    assert await cache.get("a", good) == 2
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await cache.get("b", bad)
    assert calls.count("bad") == 1, "a dead upstream costs one attempt per negative TTL"
    clock.now += 11
    assert await cache.get("b", good) == 4
    cache.invalidate("b")
    assert await cache.get("b", good) == 5


@pytest.mark.anyio
async def test_concurrent_misses_share_one_fetch_and_invalidation_wins_over_a_late_answer() -> None:
    cache: TtlCache[str, str] = TtlCache(positive=60, negative=10)
    started = asyncio.Event()
    release = asyncio.Event()
    fetches = 0

    async def slow() -> str:
        nonlocal fetches
        fetches += 1
        started.set()
        await release.wait()
        return f"v{fetches}"

    results: list[str] = []
    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(lambda: _collect(cache, slow, results))
        await started.wait()
        cache.invalidate("k")  # e.g. a list_changed notification while discovery is in flight
        release.set()
    assert results == ["v1"] * 5 and fetches == 1
    release.clear()
    release.set()
    assert await cache.get("k", slow) == "v2", "the invalidated answer was not kept"


async def _collect(cache: TtlCache[str, str], fetch: object, out: list[str]) -> None:
    out.append(await cache.get("k", fetch))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_waiter_that_goes_away_does_not_cancel_the_fetch_others_wait_for() -> None:
    cache: TtlCache[str, str] = TtlCache(positive=60, negative=10)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "listed"

    first = asyncio.ensure_future(cache.get("k", slow))  # the request whose client disconnects
    await started.wait()
    second = asyncio.ensure_future(cache.get("k", slow))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == "listed"
    assert first.cancelled()
    assert await cache.get("k", slow) == "listed", "the answer was kept for later callers"


def test_candidates_name_every_server_an_ambiguous_prefix_can_mean_in_project_order() -> None:
    naming = Naming("always", "-", ["git", "git-hub", "time"])
    assert naming.candidates("git-hub-push") == [("git", "hub-push"), ("git-hub", "push")]
    assert naming.candidates("time-now") == [("time", "now")]
    assert naming.candidates("time-") == [] and naming.candidates("other-x") == []
    assert Naming("never", "__", ["git"]).candidates("git__x") == []
