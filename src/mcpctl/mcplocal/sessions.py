"""The SDK's Streamable HTTP session manager, with fair shares of legacy sessions (DESIGN §12).

The SDK caps sessions only in total (10,000 by default, then 503 for everyone), so one token could
hold them all. Here every new session is admitted by a `SessionLedger` (per token, per project,
total): the session it names is closed first — forgotten at once, so its id answers 404, and its
transport terminated, which ends its server task and frees its memory — and a caller over a cap with
nothing of its own to give up gets TooManyRequestsError, which `ProjectMcpApp` answers with 429.

The SDK offers no admission hook, so this overrides its two private session-table methods,
`_admit_session` and `_discard_session` (mcp 2.3); tests/e2e/test_fair_capacity.py and
tests/integration/test_session_shares.py fail if they stop being called.

`restore` takes over a session another replica opened (DESIGN §11, `shared_sessions.py`): it is
admitted like a new one (same caps) under its own id, and its server starts already initialized
with the client's `initialize` params, so the client never notices the move.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.connection import Connection
from mcp.server.lowlevel import Server
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp_types import InitializeRequestParams
from starlette.types import Receive, Scope, Send

from mcpctl.core.session_shares import SessionLedger, SessionLimits

logger = logging.getLogger(__name__)

OPENING_SCOPE_KEY = "mcplocal.opening_session"  # the session an `initialize` opens

# (project, token sha) of the request being served: the SDK hands `_admit_session` only the
# credential, and the HTTP layer knows the rest.
ADMITTING: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "mcplocal_admitting", default=None
)


class FairSessionManager(StreamableHTTPSessionManager):
    """`StreamableHTTPSessionManager` whose sessions are shared fairly; `on_closed(session_id)` is
    told of every session that ends, however it ends (the router forgets its notification target)."""

    def __init__(
        self,
        app: Server[Any],
        *,
        limits: SessionLimits,
        on_closed: Callable[[str], None] = lambda session_id: None,
        **options: Any,
    ):
        super().__init__(app, max_sessions=None, **options)
        self.ledger = SessionLedger(limits)
        self._on_closed = on_closed
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self.on_evicted: list[Callable[[str], None]] = []  # closed to make room: gone everywhere

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        try:
            async with super().run():
                yield
        finally:
            for close in self.on_shutdown:
                await close()

    @property
    def open_sessions(self) -> int:
        """Sessions the SDK holds now (its table, not the ledger: what memory actually pays for)."""
        return len(self._server_instances)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        who = ADMITTING.get()
        if who is None:
            raise RuntimeError("a session was opened without ProjectMcpApp naming its project and token")
        project, owner = who
        victim = self.ledger.plan(project, owner)  # TooManyRequestsError: nothing of the caller's to close
        if victim is not None:
            self._evict(victim)
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            self.ledger.add(transport.mcp_session_id, project, owner)
        return transport

    async def restore(
        self,
        session_id: str,
        requestor: AuthorizationContext | None,
        version: str,
        client: InitializeRequestParams,
    ) -> None:
        """Hold a session opened elsewhere, under its id, already initialized (`version` negotiated,
        `client` its initialize params). Admitted like a new session: TooManyRequestsError over a
        cap with nothing of the caller's own to close."""
        who = ADMITTING.get()
        if who is None:
            raise RuntimeError("a session was restored without ProjectMcpApp naming its project and token")
        project, owner = who
        async with self._session_creation_lock:
            if session_id in self._server_instances:  # another request restored it meanwhile
                return
            victim = self.ledger.plan(project, owner)
            if victim is not None:
                self._evict(victim)
            transport = StreamableHTTPServerTransport(
                mcp_session_id=session_id,
                is_json_response_enabled=self.json_response,
                event_store=self.event_store,
                security_settings=self.security_settings,
                retry_interval=self.retry_interval,
                idle_timeout=self.session_idle_timeout,
            )
            if requestor is not None:
                self._session_owners[session_id] = requestor
            self._server_instances[session_id] = transport
            self.ledger.add(session_id, project, owner)
        assert self._task_group is not None
        try:
            await self._task_group.start(self._serve_restored, transport, version, client)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard_session(session_id, transport)
            raise
        logger.info("took over session %s", session_id[:8])

    async def _serve_restored(
        self,
        transport: StreamableHTTPServerTransport,
        version: str,
        client: InitializeRequestParams,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """The SDK's per-session server task (`_serve_opening_request`), on a connection that has
        already seen `initialize` and `notifications/initialized`."""
        session_id = transport.mcp_session_id
        assert session_id is not None
        async with transport.connect() as (read_stream, write_stream):
            task_status.started()
            try:
                idle_scope = transport.idle_scope or anyio.CancelScope()
                with idle_scope:
                    dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
                        read_stream, write_stream, inline_methods=frozenset({"initialize"})
                    )
                    connection = Connection.for_loop(
                        dispatcher, session_id=session_id, protocol_version_hint=version
                    )
                    connection.client_params = client
                    connection.initialized.set()
                    await serve_connection(
                        self.app, dispatcher, connection=connection, lifespan_state=self._lifespan_state
                    )
            except Exception:
                logger.exception("restored session %s crashed", session_id[:8])
            finally:
                await self._discard_session(session_id, transport)

    def _evict(self, session_id: str) -> None:
        """Close a session to make room (and tell `on_evicted`: it is gone on every replica)."""
        self.close(session_id)
        for listener in self.on_evicted:
            listener(session_id)
        logger.info("closed session %s to make room for a new one", session_id[:8])

    def close(self, session_id: str) -> None:
        """Close a session here: it answers 404 from now on, and its transport is terminated in the
        background (which ends its server task; `_discard_session` then finds it gone)."""
        transport = self._server_instances.pop(session_id, None)
        self._session_owners.pop(session_id, None)
        self._closed(session_id)
        if transport is not None and self._task_group is not None:
            self._task_group.start_soon(_terminate, transport)

    async def _serve_opening_request(
        self, http_transport: StreamableHTTPServerTransport, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # the id the session will have, for whoever records its `initialize` (shared_sessions.py)
        scope[OPENING_SCOPE_KEY] = http_transport.mcp_session_id
        await super()._serve_opening_request(http_transport, scope, receive, send)

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self._closed(session_id)
        await super()._discard_session(session_id, transport)

    def _closed(self, session_id: str) -> None:
        self.ledger.remove(session_id)
        try:
            self._on_closed(session_id)
        except Exception:  # a listener's failure must not keep a session's memory alive
            logger.exception("on_closed failed for session %s", session_id[:8])


async def _terminate(transport: StreamableHTTPServerTransport) -> None:
    try:
        with anyio.CancelScope(shield=True):
            await transport.terminate()
    except Exception:  # the manager's task group must outlive one transport's trouble
        logger.exception("terminating an evicted session failed")
