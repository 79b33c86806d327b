"""The HTTP exchanges in flight on the project endpoint, per token (DESIGN §5, §12).

Two things need them:

- A token that stops working (revoked, deleted, expired, or refused by mcpd in split mode) ends what
  it has open at once: its streams (legacy GET streams, 2026-07-28 `subscriptions/listen`) are
  cancelled, its legacy sessions are terminated, and a request of it whose response has not started
  is answered 401 with `WWW-Authenticate`. A request whose handler is still working (it is the one
  that found out, in split mode) is left to send its JSON-RPC error; its session ends after it.
- A request whose client went away has its handler cancelled, and with it the upstream call
  (`notifications/cancelled`): the SDK runs a legacy session's handlers in the session's task, so a
  closed POST stream would otherwise leave the call running to the server's call timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Message, Scope, Send

logger = logging.getLogger(__name__)

EXCHANGE_SCOPE_KEY = "mcplocal.exchange"
SESSION_HEADER = b"mcp-session-id"


class Exchange:
    """One HTTP request of one token, from authentication to the end of its response."""

    def __init__(self, token_sha: str, scope: Scope, durable: Callable[[], Awaitable[None]] | None = None):
        self.token_sha, self.durable = token_sha, durable
        self.session_id = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == SESSION_HEADER), None
        )
        self.cancel_scope = anyio.CancelScope()
        self.started = False  # the response's status line went out
        self.refused = False  # the token stopped working while this was in flight
        self.swallowed = False  # the SDK's own response was replaced by a 401
        self.finished = False  # the response's last body part went out
        self.handlers: set[anyio.CancelScope] = set()

    def send(self, send: Send) -> Send:
        """`send`, except that once the token is refused a response not yet started is dropped
        (the caller answers 401 instead)."""

        async def guarded(message: Message) -> None:
            if self.durable is not None:  # what was audited so far is on disk before an answer goes
                await self.durable()
            if message["type"] == "http.response.start":
                if self.refused:
                    self.swallowed = True
                    return
                self.started = True
            elif self.swallowed:
                return
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self.finished = True
            await send(message)

        return guarded

    @contextlib.contextmanager
    def handling(self) -> Iterator[anyio.CancelScope]:
        """Run an MCP handler of this request so that it can be cancelled when the client goes."""
        with anyio.CancelScope() as scope:
            self.handlers.add(scope)
            try:
                yield scope
            finally:
                self.handlers.discard(scope)

    async def end(self, send: Send) -> None:
        """After the exchange was cancelled: a started response ends cleanly (the last chunk),
        so the client sees a stream that ended rather than a broken connection."""
        if self.started and not self.finished:
            self.finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def abandon(self) -> None:
        """The HTTP exchange is over: a handler still running has nobody to answer."""
        for scope in list(self.handlers):
            scope.cancel()


def exchange_of(scope: Scope | None) -> Exchange | None:
    found = scope.get(EXCHANGE_SCOPE_KEY) if scope is not None else None
    return found if isinstance(found, Exchange) else None


class Exchanges:
    """The exchanges in flight per token, and the legacy sessions of the SDK's session manager."""

    def __init__(self, sessions: StreamableHTTPSessionManager, forget_session: Callable[[str], None]):
        self.sessions, self.forget_session = sessions, forget_session
        self.durable: Callable[[], Awaitable[None]] | None = None  # MCPLOCAL_AUDIT_SPOOL_SYNC
        self._by_token: dict[str, set[Exchange]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def open(self, token_sha: str, scope: Scope) -> Exchange:
        exchange = Exchange(token_sha, scope, self.durable)
        scope[EXCHANGE_SCOPE_KEY] = exchange
        self._by_token.setdefault(token_sha, set()).add(exchange)
        return exchange

    def close(self, exchange: Exchange) -> None:
        exchange.abandon()
        held = self._by_token.get(exchange.token_sha)
        if held is not None:
            held.discard(exchange)
            if not held:
                del self._by_token[exchange.token_sha]
        if exchange.refused:
            self.end_sessions(exchange.token_sha)

    def end_token(self, token_sha: str) -> None:
        """The token stopped working: refuse its requests in flight, end its streams and sessions."""
        for exchange in list(self._by_token.get(token_sha, ())):
            exchange.refused = True
            if not exchange.handlers:  # a stream (started or not): it ends now, or answers 401
                exchange.cancel_scope.cancel()
        self.end_sessions(token_sha)

    def end_sessions(self, token_sha: str) -> None:
        """Terminate the token's legacy sessions, except one whose request is still being answered
        (it ends when that request does)."""
        busy = {e.session_id for e in self._by_token.get(token_sha, ()) if e.handlers}
        owners: dict[str, Any] = getattr(self.sessions, "_session_owners", {})
        doomed = [
            sid for sid, owner in owners.items() if owner.get("client_id") == token_sha and sid not in busy
        ]
        for session_id in doomed:
            self.forget_session(session_id)
            transport = self.sessions._server_instances.get(session_id)
            if transport is None:
                continue
            task = asyncio.get_running_loop().create_task(
                self.sessions._discard_session(session_id, transport)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if doomed:
            logger.info("ended %d session(s) of a token that stopped working", len(doomed))
