"""Sessions of the per-server MCP proxy: in memory, because they only name a caller; the shared
instances hold the protocol state."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

MAX_SESSIONS = 10_000
MAX_SESSIONS_PER_OWNER = 1_000


@dataclass
class ProxySession:
    id: str
    server: str
    owner: str
    last_seen: float = field(default_factory=time.monotonic)
    inflight: dict[str, asyncio.Task[dict[str, Any]]] = field(default_factory=dict)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # closed: its stream ends now


class ProxySessions:
    """Sessions of the per-server proxy (in memory: they only name a caller, instances hold state)."""

    def __init__(self, idle_seconds: float):
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, ProxySession] = {}
        self.closing = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._swept = time.monotonic()

    def open(self, server: str, owner: str) -> ProxySession:
        self._expire()
        mine = [s for s in self._sessions.values() if s.owner == owner]
        if len(mine) >= MAX_SESSIONS_PER_OWNER or len(self._sessions) >= MAX_SESSIONS:
            # a caller who opens too many sessions loses its own oldest, never someone else's
            pool = mine or list(self._sessions.values())
            self.close(min(pool, key=lambda s: s.last_seen).id)
        session = ProxySession(id=secrets.token_hex(16), server=server, owner=owner)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, server: str, owner: str) -> ProxySession | None:
        self._expire()
        session = self._sessions.get(session_id)
        if session is None or session.server != server or session.owner != owner:
            return None
        now = time.monotonic()
        if session.last_seen < now - self.idle_seconds and not session.inflight:
            self._sessions.pop(session.id, None)  # idle too long, even if no sweep has run yet
            return None
        session.last_seen = now
        return session

    def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.ended.set()
            for task in session.inflight.values():
                task.cancel()

    def close_owned_by(self, owner: str) -> None:
        """End every session of one caller (a token that was revoked or deleted)."""
        for session in [s for s in self._sessions.values() if s.owner == owner]:
            self.close(session.id)

    def _expire(self) -> None:
        """Drop idle sessions; a full sweep at most once a minute, not on every request."""
        now = time.monotonic()
        if now - self._swept < min(60.0, self.idle_seconds):
            return
        self._swept = now
        cutoff = now - self.idle_seconds
        for session in [s for s in self._sessions.values() if s.last_seen < cutoff and not s.inflight]:
            self._sessions.pop(session.id, None)

    def close_all_soon(self) -> None:
        """End every notification stream (thread- and signal-safe): mcpd is shutting down."""
        self._loop.call_soon_threadsafe(self.closing.set)

    def __len__(self) -> int:
        return len(self._sessions)
