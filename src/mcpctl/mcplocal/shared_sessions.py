"""Legacy (2025-11-25) MCP sessions any replica can serve (DESIGN §11), over a `SessionStore`.

- A successful `initialize` writes the session's record before its answer goes out.
- A request naming a session this replica does not hold looks the record up; when it exists and
  was opened by the caller's token (else: 404, exactly as an unknown id), the session is taken over
  under the same id, already initialized (`FairSessionManager.restore`, with the same caps as a new
  session), with its log level and gate reveal as they were; its resource subscriptions are held
  upstream again on its first request; upstream sessions are rebuilt lazily by the router.
- State that changes (level, reveal, subscriptions) is written before the answer of the request
  that changed it goes out, so the next request finds it on any replica.
- While a replica serves a session it refreshes the record's expiry (at most every few seconds) and
  picks up what another replica changed; a record found gone (a DELETE elsewhere) ends the session
  here too. A client's DELETE, and a session closed to make room, remove the record.
- Redis unavailable: sessions live on their replica, as without Redis (logged, never an error).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.context import CallNext, HandlerResult
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import InitializeRequestParams
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from starlette.datastructures import Headers
from starlette.types import Message, Scope, Send

from mcpctl.mcplocal.endpoint import CALLER_SCOPE_KEY, Ctx, Endpoint
from mcpctl.mcplocal.ports import Caller
from mcpctl.mcplocal.session_store import (
    SESSION_ID,
    SessionRecord,
    SessionState,
    SessionStore,
    SessionStoreUnavailable,
)
from mcpctl.mcplocal.sessions import OPENING_SCOPE_KEY, FairSessionManager

logger = logging.getLogger(__name__)

_WARN_EVERY = 30.0  # seconds between "Redis is unavailable" warnings


class SharedSessions:
    def __init__(
        self,
        store: SessionStore,
        manager: FairSessionManager,
        endpoint: Endpoint,
        *,
        refresh_seconds: float = 5.0,
    ):
        self.store, self.manager, self.endpoint = store, manager, endpoint
        self.refresh = min(refresh_seconds, store.ttl / 3)
        self._records: dict[str, SessionRecord] = {}  # as last written or read
        self._touched: dict[str, float] = {}
        self._warned = float("-inf")
        endpoint.server.middleware.append(self._on_initialize)
        manager.on_evicted.append(self._evicted)
        manager.on_shutdown.append(store.aclose)

    # ---- the HTTP side (ProjectMcpApp) -------------------------------------------------------------

    async def before(self, scope: Scope, caller: Caller) -> str | None:
        """Before the SDK sees a legacy request: make sure this replica holds the session it names,
        if it may. The session id the caller holds here, or None (the SDK answers what it answers)."""
        headers = Headers(scope=scope)
        session_id = headers.get("mcp-session-id")
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if not session_id or (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS):
            return None
        if session_id in self.manager._server_instances:
            owner = self.manager._session_owners.get(session_id)
            if owner is None or owner.get("client_id") != caller.token_sha:
                return None
            await self._refresh(session_id)
            return session_id if session_id in self.manager._server_instances else None
        if not SESSION_ID.fullmatch(session_id):
            return None
        try:
            record = await self.store.load(session_id)
        except SessionStoreUnavailable as exc:
            self._unavailable(exc)
            return None
        if record is None or record.token_sha != caller.token_sha or record.project != caller.project:
            return None  # never rebind another token's session: 404 as for an unknown id
        try:
            client = InitializeRequestParams.model_validate(record.client, by_name=False)
        except ValueError:
            logger.warning("session %s: its record's client params are not valid", session_id[:8])
            return None
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        self.endpoint.restoring[session_id] = record.state
        self._records[session_id], self._touched[session_id] = record, time.monotonic()
        try:
            await self.manager.restore(session_id, requestor, record.protocol_version, client)
        except BaseException:  # over a cap (429), or cancelled: nothing of it is kept here
            if session_id not in self.manager._server_instances:
                self.closed(session_id)
            raise
        return session_id

    def guard(self, session_id: str, send: Send) -> Send:
        """`send`, writing the session's changed state before any part of the answer goes out."""

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.body":
                await self._save_changes(session_id)
            await send(message)

        return guarded

    async def after(self, session_id: str, scope: Scope) -> None:
        """After the SDK answered: a session the client deleted is deleted everywhere."""
        if scope.get("method") == "DELETE" and session_id not in self.manager._server_instances:
            await self._delete(session_id)

    def closed(self, session_id: str) -> None:
        """The session ended on this replica (however): forget its bookkeeping, keep its record."""
        self._records.pop(session_id, None)
        self._touched.pop(session_id, None)
        self.endpoint.restoring.pop(session_id, None)

    # ---- internals -------------------------------------------------------------------------------

    async def _on_initialize(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        """Server middleware: record a session whose `initialize` succeeded, before its answer."""
        result = await call_next(ctx)
        request = ctx.request
        if ctx.method != "initialize" or request is None:
            return result
        scope: dict[str, Any] = request.scope
        session_id, caller = scope.get(OPENING_SCOPE_KEY), scope.get(CALLER_SCOPE_KEY)
        if not isinstance(session_id, str) or not isinstance(caller, Caller):
            return result
        client = {k: v for k, v in dict(ctx.params or {}).items() if k != "_meta"}
        requested = client.get("protocolVersion")
        version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        record = SessionRecord(caller.token_sha, caller.project, str(version), client)
        try:
            await self.store.save(session_id, record)
        except SessionStoreUnavailable as exc:
            self._unavailable(exc)
        else:
            self._records[session_id], self._touched[session_id] = record, time.monotonic()
        return result

    def _state(self, session_id: str) -> SessionState | None:
        live = self.endpoint.router.sessions.get(session_id)
        if live is None:
            return None
        return SessionState(live.level, live.revealed, tuple(sorted(live.subscriptions)))

    async def _save_changes(self, session_id: str) -> None:
        record, state = self._records.get(session_id), self._state(session_id)
        if record is None or state is None or state == record.state:
            return
        changed = SessionRecord(
            record.token_sha, record.project, record.protocol_version, record.client, state
        )
        try:
            await self.store.save(session_id, changed)
        except SessionStoreUnavailable as exc:
            self._unavailable(exc)
        else:
            self._records[session_id], self._touched[session_id] = changed, time.monotonic()

    async def _refresh(self, session_id: str) -> None:
        """At most every `refresh` seconds: push the record's expiry back and take what another
        replica changed; a record gone (deleted elsewhere) ends the session here."""
        now = time.monotonic()
        if session_id not in self._records or now - self._touched.get(session_id, 0.0) < self.refresh:
            return
        self._touched[session_id] = now
        try:
            record = await self.store.touch(session_id)
        except SessionStoreUnavailable as exc:
            self._unavailable(exc)
            return
        if record is None:
            logger.info("session %s was ended on another replica", session_id[:8])
            self.manager.close(session_id)
            return
        live = self.endpoint.router.sessions.get(session_id)
        if live is not None and record.state != self._records[session_id].state:
            live.level, live.revealed = record.state.level, record.state.revealed
        self._records[session_id] = record

    def _evicted(self, session_id: str) -> None:
        self.endpoint.router.spawn(self._delete(session_id))

    async def _delete(self, session_id: str) -> None:
        self.closed(session_id)
        try:
            await self.store.delete(session_id)
        except SessionStoreUnavailable as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            logger.warning("session store (Redis) unavailable, sessions stay on their replica: %s", exc)
