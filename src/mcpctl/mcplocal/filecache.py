"""The pipeline cache on disk (DESIGN §10): result pages, summaries, titles and embeddings, keyed by a
hash of (stage, config, content), shared by every mcplocal process that points at the same directory.

Layout: `<dir>/<2 hex>/<sha256(key)>`, one file per entry: a header (magic, the key, the payload's length
and CRC-32) and the payload. A write goes to a temp file beside its entry and is renamed over it
(`os.replace`), so a reader sees the old entry, the new one or none, never half of one. No fsync: a cache
entry is worth only the work of recomputing it, and what a power cut can leave behind (an empty or
zero-filled file under a renamed name) fails the header check and is read as a miss and removed.

Size: the bytes of entry files stay within `max_bytes` whenever no process holds `<dir>/.lock`. Every
change to the set of entries (a rename into place, an eviction, removing a bad entry) is made holding
an exclusive flock on it, against a shared ledger (`<dir>/.ledger`, the total as last counted); a put
that would take the total past `max_bytes` first evicts the least recently used entries (by mtime)
down to 90 %. Readers take no lock: a hit is one read plus, at most once a minute per entry, a
`utime` to refresh its recency. Temp files of writes in flight are not counted (at most one per put in
progress); ones left by a crashed writer are removed by the next eviction once an hour old. The ledger
is recounted from the directory when it is missing or unreadable, at every eviction, and every ten
minutes, so entries lost to a crash between rename and ledger update are corrected soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcpctl.mcplocal.settings import GatewaySettings

logger = logging.getLogger(__name__)

_MAGIC = b"MCPC"
_VERSION = 1
_HEADER = struct.Struct(">4sBHQI")  # magic, version, key length, payload length, payload CRC-32
_TEMP_PREFIX = ".tmp-"
_LOCK = ".lock"
_LEDGER = ".ledger"
LOW_WATER = 0.9


def cache_key(*parts: Any) -> str:
    """The sha256 hex of a canonical JSON of `parts` (e.g. `cache_key("summarize", config, content)`):
    the same parts give the same key in every process and release. bytes parts are hashed as hex."""

    def _bytes(value: object) -> object:
        if isinstance(value, bytes | bytearray):
            return {"$bytes": bytes(value).hex()}
        raise TypeError(f"cache_key: {type(value).__name__} is not JSON")

    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_bytes)
    return hashlib.sha256(text.encode()).hexdigest()


class FileCache:
    """A size-bounded LRU cache of bytes in a directory, safe for several processes sharing it.

    It never raises an OSError into its caller: a cache that cannot be read or written behaves as an
    empty one (and says so in the log), so a stage does its work instead of failing the call."""

    key = staticmethod(cache_key)

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        touch_interval: float = 60.0,
        recount_interval: float = 600.0,
        stale_temp_age: float = 3600.0,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._touch_interval = touch_interval
        self._recount_interval = recount_interval
        self._stale_temp_age = stale_temp_age
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._finished = 0  # computations ended well, so a miss read meanwhile is read again
        self._ready = False
        self._refused = False  # an unusable directory was reported

    # -- the async API -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None on a miss (absent, unreadable, torn or someone else's)."""
        return await asyncio.to_thread(self._get, key)

    async def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys that have no entry now (by its file alone: an entry found here may still turn
        out torn when read, and is then a miss)."""
        return await asyncio.to_thread(lambda: [key for key in keys if not self._path(key).exists()])

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` (replacing any older one); one larger than the cache is dropped."""
        await asyncio.to_thread(self._put, key, value)

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """The stored value, else `compute()`'s, stored. A hit never calls `compute`; concurrent misses
        of one key in this process share one call (another process may compute it too: the last
        complete entry wins). `compute`'s exception reaches every caller waiting on it; if the caller
        computing is cancelled, a waiting one takes over."""
        reread = True
        while True:
            pending = self._inflight.get(key)
            if pending is None:
                finished = self._finished
                value = await self.get(key)
                if value is not None:
                    return value
                pending = self._inflight.get(key)  # someone may have started while we read
                if pending is None:
                    if reread and finished != self._finished:
                        reread = False  # a computation ended while we read: it may have been ours
                        continue
                    break
            try:
                return await asyncio.shield(pending)
            except _Abandoned:
                continue
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
            await self.put(key, value)
        except asyncio.CancelledError:
            _fail(future, _Abandoned())
            raise
        except BaseException as exc:
            _fail(future, exc)
            raise
        else:
            self._finished += 1
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]

    # -- entries -------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        name = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / name[:2] / name

    def _get(self, key: str) -> bytes | None:
        path = self._path(key)
        if not self._usable():
            return None
        try:
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as file:
                data = file.read()
                stat = os.fstat(file.fileno())
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("pipeline cache: cannot read an entry (%s)", _reason(exc))
            return None
        value = _decode(data, key)
        if value is None:
            logger.warning("pipeline cache: removing a damaged entry %s", path.name)
            self._remove_bad(path, stat)
            return None
        if time.time() - stat.st_mtime >= self._touch_interval:
            with contextlib.suppress(OSError):  # evicted or replaced meanwhile: no matter
                os.utime(path)
        return value

    def _put(self, key: str, value: bytes) -> None:
        data = _encode(key, value)
        if len(data) > self.max_bytes:
            return
        path = self._path(key)
        temp: str | None = None
        if not self._usable():
            return
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)  # 0600
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            with self._locked() as lock:
                total, old, counted = self._total(lock), _size(path), False
                if total - old + len(data) > self.max_bytes:
                    total, counted = self._evict(keep=path, room=len(data)) + old, True
                os.replace(temp, path)
                temp = None
                _write_ledger(lock, total - old + len(data), counted=counted)
        except OSError as exc:
            logger.warning("pipeline cache: cannot store an entry (%s)", _reason(exc))
        finally:
            if temp is not None:
                _unlink(Path(temp))

    def _remove_bad(self, path: Path, seen: os.stat_result) -> None:
        try:
            with self._locked() as lock:
                now = os.stat(path)
                if (now.st_ino, now.st_dev) != (seen.st_ino, seen.st_dev):
                    return  # replaced by a good entry meanwhile
                total = self._total(lock)
                os.unlink(path)
                _write_ledger(lock, max(0, total - now.st_size))
        except OSError:
            pass

    # -- the shared ledger and eviction (all under the lock) -----------------------------------------

    def _usable(self) -> bool:
        """Whether the directory can be used (`_prepare`); why not is logged once."""
        try:
            self._prepare()
        except OSError as exc:
            if not self._refused:
                self._refused = True
                logger.warning("pipeline cache %s: %s", self.directory, exc.strerror or _reason(exc))
            return False
        return True

    def _prepare(self) -> None:
        """Create the directory (0700), and trust it only when this user owns it and no one else
        may write it: someone who could would plant entries (forged pages, summaries) or links.
        An untrusted directory is an OSError for every use, so the cache behaves as empty."""
        if self._ready:
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = os.lstat(self.directory)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
            raise PermissionError(
                errno.EPERM,
                "not used: it must be a directory of this user that no one else may write (chmod 700)",
                str(self.directory),
            )
        self._ready = True

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """The exclusive lock of the directory, as an fd on the ledger file (opened per use, so two
        threads of one process exclude each other too)."""
        self._prepare()
        lock = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ledger = os.open(self.directory / _LEDGER, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                yield ledger
            finally:
                os.close(ledger)
        finally:
            os.close(lock)  # releases the flock

    def _total(self, ledger: int) -> int:
        try:
            total_text, counted_text = os.pread(ledger, 64, 0).decode().split()
            total, counted = int(total_text), float(counted_text)
        except ValueError:
            return self._recount(ledger)
        if time.time() - counted > self._recount_interval:
            return self._recount(ledger)
        return total

    def _recount(self, ledger: int) -> int:
        total = sum(size for _, _, size in self._scan())
        _write_ledger(ledger, total, counted=True)
        return total

    def _evict(self, *, keep: Path, room: int) -> int:
        """Remove least recently used entries until `room` more bytes fit under the low-water mark;
        returns the bytes of the entries left, `keep`'s excluded (it is about to be replaced)."""
        entries = sorted(self._scan(), key=lambda entry: entry[1])
        total = sum(size for path, _, size in entries if path != keep)
        target = max(0, int(self.max_bytes * LOW_WATER) - room)
        for path, _, size in entries:
            if total <= target:
                break
            if path == keep:
                continue
            _unlink(path)
            total -= size
        return total

    def _scan(self) -> list[tuple[Path, float, int]]:
        """(path, mtime, size) of every entry; removes stale temp files on the way."""
        found: list[tuple[Path, float, int]] = []
        now = time.time()
        for sub in _entries(self.directory):
            if len(sub.name) != 2 or not sub.is_dir(follow_symlinks=False):
                continue
            for entry in _entries(Path(sub.path)):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.startswith(_TEMP_PREFIX):
                    if now - stat.st_mtime > self._stale_temp_age:
                        _unlink(Path(entry.path))
                elif len(entry.name) == 64:
                    found.append((Path(entry.path), stat.st_mtime, stat.st_size))
        return found


def file_cache_from(settings: GatewaySettings) -> FileCache:
    """The cache the settings describe: `cache_dir` (default ~/.cache/mcpctl/pipeline) bounded by
    `cache_max_bytes`. Nothing is created until the first write."""
    directory = settings.cache_dir or Path.home() / ".cache" / "mcpctl" / "pipeline"
    return FileCache(directory, settings.cache_max_bytes)


class _Abandoned(Exception):
    """The caller computing a value was cancelled: a waiter computes it instead."""


def _fail(future: asyncio.Future[bytes], exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: no "never retrieved" noise when no one was waiting


def _encode(key: str, value: bytes) -> bytes:
    key_bytes = key.encode()
    header = _HEADER.pack(_MAGIC, _VERSION, len(key_bytes), len(value), zlib.crc32(value))
    return header + key_bytes + value


def _decode(data: bytes, key: str) -> bytes | None:
    """The payload if `data` is a whole entry for `key`, else None."""
    if len(data) < _HEADER.size:
        return None
    magic, version, key_length, length, crc = _HEADER.unpack_from(data)
    start = _HEADER.size + key_length
    if magic != _MAGIC or version != _VERSION or data[_HEADER.size : start] != key.encode():
        return None
    value = data[start:]
    if len(value) != length or zlib.crc32(value) != crc:
        return None
    return value


def _write_ledger(ledger: int, total: int, *, counted: bool = False) -> None:
    if not counted:
        try:
            counted_at = os.pread(ledger, 64, 0).decode().split()[1]
        except (IndexError, ValueError):
            counted_at = "0"
    else:
        counted_at = f"{time.time():.3f}"
    os.ftruncate(ledger, 0)
    os.pwrite(ledger, f"{total} {counted_at}\n".encode(), 0)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except OSError:
        return []


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("pipeline cache: cannot remove %s (%s)", path.name, _reason(exc))


def _reason(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
