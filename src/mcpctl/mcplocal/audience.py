"""Who hears a project's notifications outside requests (DESIGN §5 "Lists follow the project").

A project's audience is its legacy sessions (each with its GET stream) and its 2026-07-28
`subscriptions/listen` streams (reached through `publishers`, one bus per project in the endpoint).
list_changed reaches all of them; `resources/updated` only the subscribers of that URI; log lines
(`notifications/message`) only legacy sessions (the 2026 era has no log stream outside requests),
each at the level its client set with `logging/setLevel`. Upstream instances are shared by every
session, so a client's level is applied here, at the gateway, and never pushed upstream.

Resource subscriptions are counted per (server, URI) across sessions and listen streams
(`Subscriptions`): the upstream is subscribed when the first subscriber arrives and unsubscribed
when the last one leaves (unsubscribes, or its session or stream ends), so one client's unsubscribe
never cuts the others off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcpctl.mcplocal.ports import Caller

logger = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
LOG_MESSAGE = "notifications/message"
RESOURCE_UPDATED = "notifications/resources/updated"
LIST_CHANGED = (
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
)

# (project, method, params): hand a notification to the project's 2026-07-28 listen streams
Publisher = Callable[[str, str, dict[str, Any] | None], Awaitable[None]]


@dataclass
class LiveSession:
    """A downstream session that can take notifications outside a request (legacy GET stream)."""

    key: str
    project: str
    caller: Caller
    send: Callable[[str, dict[str, Any] | None], Awaitable[None]]
    subscriptions: set[str]
    seen: float
    level: str | None = None  # set by logging/setLevel; None: every log line
    revealed: bool = False  # the gate proxy model: the whole tool list is shown (begin_session or a call)
    protocol_version: str | None = None  # as negotiated in initialize
    capabilities: Any = None  # the client's, declared in initialize (the SDK's ClientCapabilities)

    def wants_log(self, params: dict[str, Any] | None) -> bool:
        """Whether a log line passes this session's `logging/setLevel`."""
        level = params.get("level") if params else None
        if level not in LOG_LEVELS:
            return False
        return self.level is None or LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.level)


@dataclass
class Subscriptions:
    """Resource subscriptions, counted per (server, URI) across holders (a legacy session's key or
    a listen stream's), each with the caller to unsubscribe with when it leaves."""

    _holders: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _held: dict[str, dict[tuple[str, str], Caller]] = field(default_factory=dict)

    def add(self, holder: str, server: str, uri: str, caller: Caller) -> bool:
        """Record it; True when it is the first for (server, uri): subscribe upstream."""
        holders = self._holders.setdefault((server, uri), set())
        first = not holders
        holders.add(holder)
        self._held.setdefault(holder, {})[(server, uri)] = caller
        return first

    def remove(self, holder: str, server: str, uri: str) -> bool:
        """Forget it; True when no one else holds (server, uri): unsubscribe upstream."""
        held = self._held.get(holder)
        if held is None or held.pop((server, uri), None) is None:
            return False
        if not held:
            del self._held[holder]
        holders = self._holders.get((server, uri), set())
        holders.discard(holder)
        if holders:
            return False
        self._holders.pop((server, uri), None)
        return True

    def drop(self, holder: str) -> list[tuple[str, str, Caller]]:
        """Forget everything `holder` held; what no one else holds any more (unsubscribe those)."""
        held = self._held.get(holder, {})
        return [(s, u, caller) for (s, u), caller in list(held.items()) if self.remove(holder, s, u)]

    def server_of(self, holder: str, uri: str) -> str | None:
        return next((s for (s, u) in self._held.get(holder, {}) if u == uri), None)

    def held(self, server: str) -> list[tuple[str, Caller]]:
        """(uri, a holder's caller) for every URI of `server` someone holds (to subscribe again)."""
        out: list[tuple[str, Caller]] = []
        for (s, uri), holders in self._holders.items():
            if s == server and holders:
                out.append((uri, self._held[next(iter(holders))][(s, uri)]))
        return out

    def holds(self, holder: str, server: str, uri: str) -> bool:
        return (server, uri) in self._held.get(holder, {})


class Audience:
    """The open legacy sessions of every project, and the publishers to their listen streams."""

    def __init__(self, idle_seconds: float = 3600.0):
        self.sessions: dict[str, LiveSession] = {}
        self.publishers: list[Publisher] = []
        self.streams: dict[str, int] = {}  # project → its open listen streams
        self._idle = idle_seconds

    def projects(self) -> set[str]:
        """The projects someone listens to (a legacy session or a listen stream)."""
        return {live.project for live in self.sessions.values()} | set(self.streams)

    def stream_opened(self, project: str) -> None:
        self.streams[project] = self.streams.get(project, 0) + 1

    def stream_closed(self, project: str) -> None:
        left = self.streams.get(project, 1) - 1
        if left > 0:
            self.streams[project] = left
        else:
            self.streams.pop(project, None)

    def remember(self, session: LiveSession) -> None:
        self.sessions[session.key] = session

    def idle(self) -> list[str]:
        """Keys of sessions not seen for the idle time (the caller forgets them)."""
        now = time.monotonic()
        return [k for k, s in self.sessions.items() if now - s.seen > self._idle]

    def forget(self, key: str) -> LiveSession | None:
        return self.sessions.pop(key, None)

    async def tell(
        self,
        project: str,
        method: str,
        params: dict[str, Any] | None,
        *,
        server: str | None = None,
        subscribed: Callable[[str], bool] | None = None,
    ) -> list[str]:
        """Deliver to the project's audience; `server`: only to sessions whose token may use it;
        `subscribed(key)`: only to sessions it says yes to. The keys of sessions found gone."""
        gone: list[str] = []
        for live in [s for s in self.sessions.values() if s.project == project]:
            if server is not None and not live.caller.may_use(server):
                continue
            if subscribed is not None and not subscribed(live.key):
                continue
            if method == LOG_MESSAGE and not live.wants_log(params):
                continue
            try:
                await live.send(method, params)
            except Exception:  # the session is gone; the caller forgets it
                logger.debug("session %s no longer takes notifications", live.key[:8])
                gone.append(live.key)
        if method != LOG_MESSAGE:
            for publish in list(self.publishers):
                try:
                    await publish(project, method, params)
                except Exception:  # boundary: one broken bus must not stop the others
                    logger.exception("publishing %s to project %s failed", method, project)
        return gone
