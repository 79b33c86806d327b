"""Where a legacy (2025-11-25) MCP session's state lives so that any replica can take it over
(DESIGN §11: "a legacy MCP session keeps working when its replica dies").

A `SessionRecord` is what a replica needs to serve a session it never saw: whose it is (the sha-256
of the token that opened it, and its project), what the client said in `initialize` (protocol
version, clientInfo, capabilities), and the state that changes afterwards (the `logging/setLevel`
level, whether the gate proxy model revealed the whole tool list, the resource subscriptions). It
holds no bearer token and no secret: a token's hash cannot be presented as the token.

`SessionStore` keeps records in Redis under `<prefix>:session:<id>`, expiring after the session idle
time (refreshed while the session is used). Every Redis failure becomes `SessionStoreUnavailable`;
callers degrade to sessions that live on their own replica.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcpctl.mcplocal.settings import GatewaySettings

logger = logging.getLogger(__name__)

# the ids the SDK mints (uuid4 hex); anything else is never looked up (no key of a client's choosing)
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class SessionStoreUnavailable(Exception):
    """Redis could not be asked (down, slow, refused); the session stays where it is."""


@dataclass(frozen=True)
class SessionState:
    """What a client changes after `initialize`."""

    level: str | None = None
    revealed: bool = False
    subscriptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionRecord:
    token_sha: str
    project: str
    protocol_version: str
    client: dict[str, Any]  # the initialize params (clientInfo, capabilities), without `_meta`
    state: SessionState = field(default_factory=SessionState)

    def dumps(self) -> str:
        body = asdict(self)
        body["state"]["subscriptions"] = list(self.state.subscriptions)
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> SessionRecord | None:
        """The record, or None when it is not one (written by another version, or tampered)."""
        try:
            body = json.loads(raw)
            state = body.get("state") or {}
            return cls(
                token_sha=str(body["token_sha"]),
                project=str(body["project"]),
                protocol_version=str(body["protocol_version"]),
                client=dict(body["client"]),
                state=SessionState(
                    level=state.get("level"),
                    revealed=bool(state.get("revealed", False)),
                    subscriptions=tuple(str(u) for u in state.get("subscriptions", ())),
                ),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignored a malformed session record")
            return None


class SessionStore:
    """Session records in Redis, each expiring `ttl_seconds` after it was last written or touched."""

    def __init__(self, url: str, prefix: str, ttl_seconds: float, *, timeout_seconds: float = 1.0):
        # Imported here, not at the top: redis-py is ~110 ms of import time that a process without
        # MCPLOCAL_REDIS_URL (no store) would pay on every cold start.
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        self.prefix, self.ttl = prefix, max(1, int(ttl_seconds))
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    async def save(self, session_id: str, record: SessionRecord) -> None:
        try:
            await self._redis.set(self._key(session_id), record.dumps(), ex=self.ttl)
        except self._errors as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def load(self, session_id: str) -> SessionRecord | None:
        try:
            raw = await self._redis.get(self._key(session_id))
        except self._errors as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        return None if raw is None else SessionRecord.loads(raw)

    async def touch(self, session_id: str) -> SessionRecord | None:
        """The record, its expiry pushed back by the TTL; None when it is gone (deleted or expired)."""
        try:
            raw = await self._redis.getex(self._key(session_id), ex=self.ttl)
        except self._errors as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        return None if raw is None else SessionRecord.loads(raw)

    async def delete(self, session_id: str) -> None:
        try:
            await self._redis.delete(self._key(session_id))
        except self._errors as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        except self._errors:
            logger.debug("closing the session store's connections failed", exc_info=True)


def session_store_for(settings: GatewaySettings) -> SessionStore | None:
    """The store `MCPLOCAL_REDIS_URL` names (keys under `MCPLOCAL_REDIS_CHANNEL`), or None."""
    if not settings.redis_url:
        return None
    return SessionStore(settings.redis_url, settings.redis_channel, settings.session_idle_seconds)
