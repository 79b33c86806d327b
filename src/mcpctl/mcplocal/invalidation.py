"""Cross-replica invalidation over Redis pub/sub (DESIGN §11), for mcpd and for `mcplocal serve|stdio`.

`InvalidationBus` is one process's end of the installation's channel (`core/invalidation.py` is the
message format):

- publishing (mcpd only) never blocks or fails the write that caused it: `publish()` puts the message
  on a bounded queue that one task drains over one connection; a message that cannot be sent is
  retried with backoff while it is still useful (younger than `stale_seconds`), and when the queue
  overflows the backlog is replaced by one "anything may have changed";
- subscribing (every process) applies the other processes' messages (its own are recognised by its
  instance id) through `on_message`, the same code paths the data-plane link's `ended`/`changed`
  frames take;
- when Redis goes away the process keeps serving on its TTLs; the subscriber reconnects with backoff
  and, since it may have missed messages meanwhile, calls `on_catch_up` once (drop every cached
  introspection and view).

Redis is optional: without a URL there is no bus and nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mcpctl.core import invalidation as wire

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BusSettings:
    url: str
    channel_prefix: str = "mcpctl"
    queue_max: int = 1000  # publications waiting for Redis; beyond it the backlog becomes one "changed"
    stale_seconds: float = 30.0  # a publication older than this is useless (the TTLs have done its job)
    backoff_initial_seconds: float = 0.1
    backoff_max_seconds: float = 5.0
    socket_timeout_seconds: float = 5.0
    health_check_seconds: float = 5.0  # the subscriber PINGs an idle connection this often


@dataclass
class BusCounters:
    """What the bus did (exported by mcpd as Prometheus metrics)."""

    applied: dict[str, int] = field(default_factory=dict)  # by kind: tokens-ended, changed, catch-up
    published: int = 0
    publish_failures: int = 0
    dropped: int = 0  # publications given up (stale) or folded into one "changed" on overflow
    reconnects: int = 0


class InvalidationBus:
    def __init__(
        self,
        settings: BusSettings,
        on_message: Callable[[wire.Invalidation], None],
        on_catch_up: Callable[[], None],
        *,
        origin: str | None = None,
    ):
        self.settings = settings
        self.origin = origin or uuid.uuid4().hex
        self.channel = wire.channel(settings.channel_prefix)
        self.on_message, self.on_catch_up = on_message, on_catch_up
        self.counters = BusCounters()
        self.connected = False  # the subscriber is subscribed (what /readyz and the gauge report)
        self._queue: asyncio.Queue[tuple[float, wire.Invalidation]] = asyncio.Queue(settings.queue_max)
        self._overflowed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()

    # ---- publishing ------------------------------------------------------------------------------------

    def publish(self, message: wire.Invalidation) -> None:
        """Queue `message` for the other processes; never waits, never raises."""
        try:
            self._queue.put_nowait((time.monotonic(), message))
        except asyncio.QueueFull:
            if not self._overflowed:
                logger.warning("invalidation queue full (Redis slow or away): announcing a full change")
            self._overflowed = True
            self.counters.dropped += 1

    def tokens_ended(self, token_shas: list[str] | tuple[str, ...]) -> None:
        for message in wire.tokens_ended(self.origin, token_shas):
            self.publish(message)

    def changed(self, projects: list[str] | tuple[str, ...] | None = None) -> None:
        self.publish(wire.changed(self.origin, projects))

    async def _publisher(self) -> None:
        from redis.exceptions import RedisError  # redis only when configured: see _client

        client = self._client()
        delay = self.settings.backoff_initial_seconds
        failing = False
        try:
            while True:
                at, message = await self._next()
                while True:
                    if time.monotonic() - at > self.settings.stale_seconds:
                        self.counters.dropped += 1
                        break
                    try:
                        await client.publish(self.channel, wire.encode(message))
                    except (RedisError, OSError) as exc:
                        self.counters.publish_failures += 1
                        if not failing:
                            logger.warning("cannot publish invalidations to Redis (%s): retrying", exc)
                        failing = True
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.settings.backoff_max_seconds)
                        continue
                    self.counters.published += 1
                    if failing:
                        logger.info("publishing invalidations to Redis again")
                    failing, delay = False, self.settings.backoff_initial_seconds
                    break
        finally:
            await client.aclose()

    async def _next(self) -> tuple[float, wire.Invalidation]:
        if self._overflowed and self._queue.empty():
            self._overflowed = False
            return time.monotonic(), wire.changed(self.origin)
        item = await self._queue.get()
        if self._overflowed:  # the backlog is stale anyway: one "anything changed" covers all of it
            while not self._queue.empty():
                self._queue.get_nowait()
                self.counters.dropped += 1
            self._overflowed = False
            return time.monotonic(), wire.changed(self.origin)
        return item

    # ---- subscribing -----------------------------------------------------------------------------------

    async def _subscriber(self) -> None:
        from redis.exceptions import RedisError  # redis only when configured: see _client

        delay = self.settings.backoff_initial_seconds
        missed = False  # whether messages may have been missed (never on the very first subscription)
        while True:
            client = self._client()
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._confirmed(pubsub)  # from here on nothing published is missed
                self.connected = True
                self._subscribed.set()
                delay = self.settings.backoff_initial_seconds
                if missed:
                    self.counters.reconnects += 1
                    logger.info("Redis at %s reachable again: dropping cached views", self._where())
                    self._apply_catch_up()
                missed = True
                await self._listen(pubsub)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected or not missed:
                    logger.warning(
                        "Redis at %s unreachable (%s): serving on TTLs until it is back", self._where(), exc
                    )
                missed = True
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.backoff_max_seconds)

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        """Apply messages until the connection fails. An idle connection is PINGed every
        `health_check_seconds`; one that answers nothing for two of those plus the socket timeout is
        half-open (a Redis that vanished without closing it) and is given up like a closed one."""
        every = self.settings.health_check_seconds
        heard = pinged = time.monotonic()
        while True:
            raw = await pubsub.get_message(timeout=min(1.0, every))
            now = time.monotonic()
            if raw is not None:
                heard = now
                if raw.get("type") == "message":
                    self._apply(raw.get("data"))
            if now - heard > 2 * every + self.settings.socket_timeout_seconds:
                raise ConnectionError("Redis stopped answering PING")
            if now - pinged >= every and now - heard >= every:
                await pubsub.ping()
                pinged = now

    async def _confirmed(self, pubsub: aioredis.client.PubSub) -> None:
        deadline = time.monotonic() + self.settings.socket_timeout_seconds
        while time.monotonic() < deadline:
            reply = await pubsub.get_message(timeout=max(deadline - time.monotonic(), 0.01))
            if reply is not None and reply.get("type") == "subscribe":
                return
        raise TimeoutError("Redis did not confirm the subscription")

    def _apply(self, data: object) -> None:
        if not isinstance(data, bytes | str):
            return
        message = wire.decode(data)
        if message is None or message.origin == self.origin:
            return  # not ours to understand, or our own
        kind = wire.TOKENS_ENDED if isinstance(message, wire.TokensEnded) else wire.CHANGED
        try:
            self.on_message(message)
        except Exception:
            logger.exception("applying an invalidation failed")
            return
        self.counters.applied[kind] = self.counters.applied.get(kind, 0) + 1

    def _apply_catch_up(self) -> None:
        try:
            self.on_catch_up()
        except Exception:
            logger.exception("dropping cached views after a Redis outage failed")
            return
        self.counters.applied["catch-up"] = self.counters.applied.get("catch-up", 0) + 1

    # ---- lifetime ----------------------------------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        # Imported here, not at the top: redis-py is ~110 ms of import time that a process without
        # MCPLOCAL_REDIS_URL (no bus, so no client) would pay on every cold start.
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # no retries inside redis-py: a failure surfaces here, so reconnection (and catch-up) is ours
        return aioredis.Redis.from_url(
            self.settings.url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=self.settings.socket_timeout_seconds,
            socket_connect_timeout=self.settings.socket_timeout_seconds,
            socket_keepalive=True,
        )

    def _where(self) -> str:
        """The server, never the URL's password."""
        url = urlsplit(self.settings.url)
        return f"{url.scheme}://{url.hostname or ''}{f':{url.port}' if url.port else ''}"

    def start(self, *, publish: bool = True) -> None:
        """Subscribe (and publish, unless this process only listens) in background tasks."""
        self._tasks.append(asyncio.create_task(self._subscriber(), name="invalidation-subscriber"))
        if publish:
            self._tasks.append(asyncio.create_task(self._publisher(), name="invalidation-publisher"))

    async def wait_subscribed(self, timeout: float) -> bool:
        """Whether the subscriber is (or within `timeout` becomes) subscribed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        return self.connected

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.connected = False
