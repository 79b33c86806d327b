"""Discovery (DESIGN §5): each server's tools, prompts, resources and resource templates, fetched
whole (every upstream page) with a short timeout of their own and cached per server with a positive
and a negative TTL. Fetches of one server in flight together share one deadline, and a server that
cannot be reached (the timeout ran out, or the plane says it is not running) is remembered as
unreachable for the negative TTL for every kind, so a dead or hung server costs one discovery
timeout in all, then nothing; a server that answers a kind with an error fails
only that kind, and `-32601` is an empty list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp_types import METHOD_NOT_FOUND

from mcpctl.core.ttlcache import TtlCache
from mcpctl.mcplocal.ports import Caller, ControlPlane, UpstreamFailure

logger = logging.getLogger(__name__)

MAX_UPSTREAM_PAGES = 100
Items = tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ListKind:
    method: str
    field: str  # the result's list field
    key: str  # what identifies an item
    prefixed: bool  # exposed under the server's prefix in `always` mode
    changed: str  # the list_changed notification that invalidates it
    legal: bool = False  # exposed names are made legal tool names


KINDS: dict[str, ListKind] = {
    "tools": ListKind("tools/list", "tools", "name", True, "notifications/tools/list_changed", True),
    "prompts": ListKind("prompts/list", "prompts", "name", True, "notifications/prompts/list_changed"),
    "resources": ListKind(
        "resources/list", "resources", "uri", False, "notifications/resources/list_changed"
    ),
    "resourceTemplates": ListKind(
        "resources/templates/list",
        "resourceTemplates",
        "uriTemplate",
        False,
        "notifications/resources/list_changed",
    ),
}


class _ListFailed(UpstreamFailure):
    """The server answered, but not with a list of that kind (its other kinds may be fine)."""


class Discovery:
    """Every server's lists, as the router needs them."""

    def __init__(self, plane: ControlPlane, *, timeout: float, positive: float, negative: float):
        self.plane, self.timeout, self.negative = plane, timeout, negative
        self.cache: TtlCache[tuple[str, str], Items] = TtlCache(positive, negative)
        self._unreachable: dict[str, float] = {}  # server → until when it is not asked
        # server → the deadline its fetches in flight share: a kind asked while another is still
        # waiting does not start a timeout of its own
        self._deadlines: dict[str, float] = {}

    def peek(self, server: str, kind_name: str) -> Items | None:
        """What is cached now, without I/O (None when absent, stale or failed)."""
        return self.cache.peek((server, kind_name))

    def invalidate(self, server: str | None = None, kind_name: str | None = None) -> None:
        """Forget a server's list of one kind (or of every kind, or every server's), and that it
        was unreachable: it is asked again."""
        if server is None:
            self.cache.invalidate()
            self._unreachable.clear()
            return
        for name in (kind_name,) if kind_name is not None else tuple(KINDS):
            self.cache.invalidate((server, name))
        self._unreachable.pop(server, None)

    async def _fetch(self, caller: Caller | None, server: str, kind: ListKind) -> Items:
        now = asyncio.get_running_loop().time()
        deadline = self._deadlines.get(server)
        if deadline is None or deadline <= now:
            deadline = self._deadlines[server] = now + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                return await self._pages(caller, server, kind)
        finally:
            if self._deadlines.get(server) == deadline:  # the next fetch has its own time
                del self._deadlines[server]

    async def _pages(self, caller: Caller | None, server: str, kind: ListKind) -> Items:
        upstream = self.plane.upstream(caller, server, None)
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_UPSTREAM_PAGES):
            params = {"cursor": cursor} if cursor else None
            answer = await upstream.request(kind.method, params, timeout=None, notify=None)
            if "error" in answer:
                error = answer["error"] if isinstance(answer["error"], dict) else {}
                if error.get("code") == METHOD_NOT_FOUND:
                    return ()  # the server does not offer this kind: an empty list, not a failure
                raise _ListFailed(server, f"{kind.method} failed: {error.get('message', error)}")
            result = answer.get("result") or {}
            page = result.get(kind.field) if isinstance(result, dict) else None
            if not isinstance(page, list):
                raise _ListFailed(server, f"{kind.method} answered without a {kind.field} list")
            items.extend(
                item for item in page if isinstance(item, dict) and isinstance(item.get(kind.key), str)
            )
            cursor = result.get("nextCursor")
            if not cursor or not isinstance(cursor, str):
                break
        return tuple(items)

    async def discover(
        self, caller: Caller | None, server: str, kind_name: str
    ) -> tuple[dict[str, Any], ...] | None:
        """A server's items of one kind (cached); None when the server cannot say (logged). A
        server that could not be reached is not asked for any kind until its negative TTL ends."""
        kind = KINDS[kind_name]
        down = self._unreachable.get(server)
        if down is not None and down > time.monotonic():
            return None
        try:
            return await self.cache.get((server, kind_name), lambda: self._fetch(caller, server, kind))
        except TimeoutError:
            logger.warning(
                "discovery: server %s did not list %s within the discovery timeout", server, kind.field
            )
            self._unreachable[server] = time.monotonic() + self.negative
        except _ListFailed as exc:
            logger.warning("discovery: server %s: %s", server, exc)
        except UpstreamFailure as exc:
            logger.warning("discovery: server %s: %s", server, exc)
            self._unreachable[server] = time.monotonic() + self.negative
        except Exception:  # boundary: one broken upstream never breaks the endpoint
            logger.exception("discovery: server %s failed", server)
        return None

    async def catalog(
        self, caller: Caller | None, kind_name: str, servers: Sequence[str]
    ) -> dict[str, Items | None]:
        """Several servers' lists of one kind, fetched side by side."""
        if len(servers) == 1:  # a call's own server: no gather on the hot path
            return {servers[0]: await self.discover(caller, servers[0], kind_name)}
        found = await asyncio.gather(*(self.discover(caller, s, kind_name) for s in servers))
        return dict(zip(servers, found, strict=True))
