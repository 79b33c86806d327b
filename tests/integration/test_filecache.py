"""The pipeline cache on disk (DESIGN §10): hits, single flight, atomic entries, damage, LRU bounds."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import anyio
import pytest

from mcpctl.mcplocal.filecache import FileCache, cache_key, file_cache_from
from mcpctl.mcplocal.settings import GatewaySettings

pytestmark = pytest.mark.anyio


def entries(directory: Path) -> list[Path]:
    return [p for p in directory.glob("??/*") if not p.name.startswith(".")]


def total(directory: Path) -> int:
    return sum(p.stat().st_size for p in entries(directory))


def value_for(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def test_keys_are_canonical_hashes_of_their_parts() -> None:
    assert cache_key("summarize", {"a": 1, "b": 2}, "text") == cache_key(
        "summarize", {"b": 2, "a": 1}, "text"
    )
    assert cache_key("summarize", {"a": 1}, "text") != cache_key("summarize", {"a": 1}, "text ")
    assert cache_key("x", b"\x00\x01") != cache_key("x", "0001")
    assert len(FileCache.key("x")) == 64
    with pytest.raises(TypeError):
        cache_key(object())


async def test_a_value_put_is_got_back_and_a_new_instance_on_the_directory_sees_it(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", 1 << 20)
    assert await cache.get("k") is None
    await cache.put("k", b"value")
    await cache.put("empty", b"")
    assert await cache.get("k") == b"value" and await cache.get("empty") == b""
    await cache.put("k", b"newer")
    restarted = FileCache(tmp_path / "cache", 1 << 20)
    assert await restarted.get("k") == b"newer"
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in entries(tmp_path / "cache")} == {0o600}


async def test_a_hit_skips_compute_and_concurrent_misses_compute_once(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 1 << 20)
    calls: list[str] = []
    release = asyncio.Event()

    async def compute() -> bytes:
        calls.append("computed")
        await release.wait()
        return b"result"

    results: list[bytes] = []

    async def caller() -> None:
        results.append(await cache.get_or_compute("shared", compute))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(caller)
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert await cache.get_or_compute("shared", compute) == b"result"
    assert calls == ["computed"] and results == [b"result"] * 20


async def test_a_failed_compute_reaches_its_waiters_and_the_next_call_computes_again(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 1 << 20)
    attempts: list[int] = []

    async def flaky() -> bytes:
        attempts.append(1)
        await anyio.sleep(0.05)
        if len(attempts) == 1:
            raise RuntimeError("upstream LLM down")
        return b"ok"

    outcomes: list[object] = []

    async def caller() -> None:
        try:
            outcomes.append(await cache.get_or_compute("k", flaky))
        except RuntimeError as exc:
            outcomes.append(type(exc))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(caller)
        assert outcomes == [RuntimeError] * 3
        assert await cache.get_or_compute("k", flaky) == b"ok"


async def test_a_cancelled_computer_hands_over_to_a_waiter(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 1 << 20)
    started = asyncio.Event()

    async def slow() -> bytes:
        started.set()
        await anyio.sleep(0.1)
        return b"v"

    with anyio.fail_after(10):
        leader = asyncio.create_task(cache.get_or_compute("k", slow))
        await started.wait()
        waiter = asyncio.create_task(cache.get_or_compute("k", slow))
        await anyio.sleep(0.01)
        leader.cancel()
        assert await waiter == b"v"


async def test_readers_never_see_a_torn_entry_while_large_entries_are_rewritten(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 64 << 20)
    versions = [value_for(f"v{i}", 2_000_000 + i * 1000) for i in range(8)]
    seen: set[int] = set()

    async def writer() -> None:
        for i in range(40):
            await cache.put("big", versions[i % len(versions)])

    async def reader() -> None:
        for _ in range(120):
            value = await cache.get("big")
            assert value is not None, "a reader found the entry missing or torn during a rewrite"
            assert value in versions
            seen.add(versions.index(value))

    await cache.put("big", versions[-1])
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            tg.start_soon(reader)
            tg.start_soon(reader)
    assert len(seen) > 1, "the readers overlapped no rewrite: the test proved nothing"


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "other key", "garbage"])
async def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path: Path, damage: str) -> None:
    cache = FileCache(tmp_path, 1 << 20)
    await cache.put("k", value_for("k", 5000))
    await cache.put("other", value_for("other", 5000))
    path = next(p for p in entries(tmp_path) if p.name == hashlib.sha256(b"k").hexdigest())
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:-1])
    elif damage == "flipped":
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other key":
        other = next(p for p in entries(tmp_path) if p != path)
        path.write_bytes(other.read_bytes())
    else:
        path.write_bytes(os.urandom(len(data)))
    assert await cache.get("k") is None
    assert not path.exists()
    assert await cache.get_or_compute("k", lambda: _const(b"fresh")) == b"fresh"
    assert await cache.get("k") == b"fresh"


async def _const(value: bytes) -> bytes:
    return value


async def test_the_least_recently_read_entries_are_evicted_to_stay_under_the_bound(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 100_000, touch_interval=0)
    for i in range(9):
        await cache.put(f"k{i}", value_for(f"k{i}", 10_000))
        await anyio.sleep(0.01)  # distinct mtimes even on a coarse clock
    assert await cache.get("k0") is not None  # read: now the most recent
    await anyio.sleep(0.01)
    await cache.put("k9", value_for("k9", 10_000))  # past 100 000 with headers: evicts down to 90 %
    assert total(tmp_path) <= 90_000
    present = {f"k{i}" for i in range(10) if await cache.get(f"k{i}") is not None}
    assert "k0" in present and "k9" in present
    assert "k1" not in present and "k2" not in present
    for i in range(10, 60):
        await cache.put(f"k{i}", value_for(f"k{i}", 7_000 + 100 * i))
        assert total(tmp_path) <= 100_000


async def test_an_entry_larger_than_the_cache_is_not_stored(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 64 * 1024)
    await cache.put("small", b"s")
    await cache.put("huge", b"x" * 64 * 1024)
    assert await cache.get("huge") is None and await cache.get("small") == b"s"


async def test_stale_temp_files_of_a_crashed_writer_are_removed(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 100_000, stale_temp_age=60)
    await cache.put("k", b"v")
    sub = entries(tmp_path)[0].parent
    old, fresh = sub / ".tmp-crashed", sub / ".tmp-writing"
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"x" * 1000)
    os.utime(old, (0, 1_000_000))
    for i in range(20):  # enough to need an eviction, which scans
        await cache.put(f"k{i}", value_for(f"k{i}", 10_000))
    assert not old.exists() and fresh.exists()


async def test_a_cache_it_cannot_write_behaves_as_empty(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cache = FileCache(blocker / "cache", 1 << 20)
    await cache.put("k", b"v")
    assert await cache.get("k") is None
    assert await cache.get_or_compute("k", lambda: _const(b"computed")) == b"computed"


def test_the_settings_name_the_directory_and_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = file_cache_from(GatewaySettings(cache_dir=tmp_path / "c", cache_max_bytes=1 << 20))
    assert (cache.directory, cache.max_bytes) == (tmp_path / "c", 1 << 20)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_cache_from(GatewaySettings()).directory == tmp_path / ".cache" / "mcpctl" / "pipeline"
    assert not (tmp_path / ".cache").exists()


async def test_a_directory_others_may_write_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Security review: whoever may write the directory could plant entries (forged pages, summaries)
    or links; such a directory is not trusted, and the cache behaves as empty."""
    directory = tmp_path / "shared"
    trusted = FileCache(directory, 1 << 20)
    await trusted.put("k", b"genuine")
    directory.chmod(0o777)
    planted = FileCache(directory, 1 << 20)
    assert await planted.get("k") is None
    computed: list[int] = []

    async def compute() -> bytes:
        computed.append(1)
        return b"fresh"

    assert await planted.get_or_compute("k", compute) == b"fresh"
    assert await planted.get_or_compute("k", compute) == b"fresh"
    assert len(computed) == 2, "nothing is stored in, or read from, an untrusted directory"
    assert sum("no one else may write" in r.getMessage() for r in caplog.records) == 1
    directory.chmod(0o700)
    assert await FileCache(directory, 1 << 20).get("k") == b"genuine"


async def test_the_ledger_and_the_lock_are_never_followed_through_a_link(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (directory / ".ledger").symlink_to(victim)
    cache = FileCache(directory, 1 << 20)
    await cache.put("k", b"value")
    assert victim.read_text() == "keep me\n"
    assert await cache.get("k") is None
