"""HTTP serving of `/projects/{project}/mcp`: bearer authentication in front of the SDK's
Streamable HTTP session manager.

Every request carries `Authorization: Bearer mcpctl_pat_…`; introspection answers are cached per
token (positive and negative TTL). Missing, malformed, unknown, revoked or expired → 401 with
`WWW-Authenticate: Bearer`; a token of another project → 403; a token in the query string → 400
(RFC 6750 `invalid_request`: URLs end up in logs and histories). The SDK binds each legacy session to
the token that opened it (`scope["user"]`), validates Host/Origin and the protocol headers, and
limits the body size; `FairSessionManager` shares its sessions fairly between tokens and projects
(over a cap with nothing of its own to close: 429 with Retry-After).
A token stops working at its expiry and when it is ended (`token_ended`:
revoked or deleted in this mcpd, or refused by mcpd in split mode): its cached introspection is
dropped and its sessions and streams end (`exchanges.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import decode_header_value
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mcpctl.core.crypto import SESSION_PREFIX
from mcpctl.core.errors import TooManyRequestsError
from mcpctl.core.session_shares import SessionLimits
from mcpctl.core.tokens import PREFIX as TOKEN_PREFIX
from mcpctl.core.tokens import looks_like_token
from mcpctl.core.ttlcache import TtlCache
from mcpctl.core.turns import KeyedTurns
from mcpctl.core.urlsecrets import token_in_query
from mcpctl.mcplocal import replies
from mcpctl.mcplocal.direct import DirectCalls
from mcpctl.mcplocal.endpoint import CALLER_SCOPE_KEY, Endpoint
from mcpctl.mcplocal.exchanges import Exchanges
from mcpctl.mcplocal.ports import Caller, ControlPlane, ControlPlaneUnavailable, Introspection
from mcpctl.mcplocal.session_store import SessionStore
from mcpctl.mcplocal.sessions import ADMITTING, FairSessionManager
from mcpctl.mcplocal.shared_sessions import SharedSessions

logger = logging.getLogger(__name__)
_USERS_MAX = 4096  # tokens whose SDK user is kept (ProjectMcpApp._user)


def error(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """The one JSON error shape, with the request id mcpd's middleware gave the request (if any)."""
    request_id = scope.get("state", {}).get("request_id")
    body = {"error": {"code": code, "message": message, "details": details or {}}, "requestId": request_id}
    return JSONResponse(body, status_code=status, headers=headers)


def _challenge(error_code: str | None = None, description: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="mcpctl"'
    if error_code:
        value += f', error="{error_code}"'
    if description:
        value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def _refusal_message(bearer: str, reason: str | None, project: str) -> str:
    """Why a bearer was refused and, when it is not an McpToken at all, what the endpoint takes.
    Never echoes the bearer."""
    if reason == "malformed" and bearer.startswith(SESSION_PREFIX):
        return (
            "this is not an McpToken (a login session token?): the project endpoint takes a project "
            f'token ({TOKEN_PREFIX}…); create one with "mcpctl create mcptoken NAME -p {project}", '
            f'or try "mcpctl tools -p {project}"'
        )
    if reason == "malformed" and not looks_like_token(bearer):
        return f"token refused: malformed (the project endpoint takes an McpToken, {TOKEN_PREFIX}…)"
    return f"token refused: {reason}"


class TokenGate:
    """Introspection through the control plane, cached per token (keyed by hash: raw tokens are
    never kept as keys): accepted for the positive TTL, refused for the negative TTL; "mcpd is
    unreachable" is not remembered."""

    def __init__(
        self,
        plane: ControlPlane,
        positive_seconds: float,
        negative_seconds: float,
        max_entries: int = 100_000,
    ):
        self.plane = plane
        self.cache: TtlCache[str, Introspection] = TtlCache(
            positive_seconds,
            negative_seconds,
            max_entries=max_entries,
            remember=lambda exc: isinstance(exc, Refused),
            lifetime=_seconds_left,
        )
        self._ended: list[Callable[[str], None]] = []
        self._expiries: dict[str, asyncio.TimerHandle] = {}

    async def check(self, bearer: str) -> Introspection:
        """The accepted token's introspection; Refused or ControlPlaneUnavailable otherwise. A
        token is refused from its expiry on, whatever was cached."""
        sha = hashlib.sha256(bearer.encode()).hexdigest()
        answer = await self.cache.get(sha, lambda: self._introspect(bearer))
        left = _seconds_left(answer)
        if left is not None and left <= 0:
            self.token_ended(sha)
            raise Refused("expired")
        if left is not None and sha not in self._expiries:  # its streams and sessions end on time
            self._expiries[sha] = asyncio.get_running_loop().call_later(left, self.token_ended, sha)
        return answer

    def on_token_ended(self, callback: Callable[[str], None]) -> None:
        """Call `callback(token_sha)` when a token stops working (revoked, deleted, expired, or
        refused by mcpd): its sessions and streams end."""
        self._ended.append(callback)

    def token_ended(self, token_sha: str) -> None:
        """The token no longer works: forget its introspection and end what it has open."""
        self.cache.invalidate(token_sha)
        timer = self._expiries.pop(token_sha, None)
        if timer is not None:
            timer.cancel()
        for callback in self._ended:
            callback(token_sha)

    async def _introspect(self, bearer: str) -> Introspection:
        answer = await self.plane.introspect(bearer)
        if not answer.ok or answer.principal is None or answer.principal.kind != "token":
            raise Refused(answer.reason or "unknown")
        return answer

    def invalidate(self) -> None:
        self.cache.invalidate()


def _seconds_left(answer: Introspection) -> float | None:
    expires = answer.expires_at
    if expires is None:
        return None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return (expires - datetime.now(UTC)).total_seconds()


class Refused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProjectMcpApp:
    """The ASGI app behind `/projects/{project}/mcp` (the route supplies `path_params`)."""

    def __init__(
        self,
        endpoint: Endpoint,
        gate: TokenGate,
        *,
        allowed_hosts: Sequence[str],
        allowed_origins: Sequence[str],
        max_body_bytes: int,
        session_idle_seconds: float,
        session_limits: SessionLimits,
        session_store: SessionStore | None = None,
    ):
        """`session_store`: legacy sessions' records shared by every replica (DESIGN §11), so that
        any replica serves any session; without it a session lives and dies with its replica."""
        self.endpoint, self.gate = endpoint, gate
        replies.install()  # a reply alone goes out as JSON, SSE only when something else comes
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(allowed_hosts),
            allowed_origins=list(allowed_origins),
        )
        self.sessions = FairSessionManager(
            endpoint.server,
            limits=session_limits,
            on_closed=self._session_closed,
            security_settings=security,
            max_request_body_size=max_body_bytes,
            session_idle_timeout=session_idle_seconds,
        )
        self.shared = (
            SharedSessions(session_store, self.sessions, endpoint) if session_store is not None else None
        )
        self.direct = DirectCalls(endpoint, self.sessions, security, max_body_bytes)
        self.exchanges = Exchanges(self.sessions, endpoint.router.forget)
        gate.on_token_ended(self.exchanges.end_token)
        # a token opens its sessions one at a time: its other `initialize` requests wait their turn
        # (cheaply, off the event loop's work), so a token flooding `initialize` never has more than
        # one session being built at once and other tokens' requests are not queued behind its flood
        self.openings = KeyedTurns(1)
        self._users: dict[str, AuthenticatedUser] = {}

    def _user(self, sha: str) -> AuthenticatedUser:
        """The SDK's user of a token (its hash names the sessions' owner), made once per token: the
        pydantic AccessToken cost 5 µs per request. Read-only to the SDK; the cache is bounded."""
        user = self._users.get(sha)
        if user is None:
            if len(self._users) >= _USERS_MAX:
                self._users.clear()
            user = self._users[sha] = AuthenticatedUser(
                AccessToken(token=sha, client_id=sha, scopes=[], subject=sha)
            )
        return user

    def _session_closed(self, session_id: str) -> None:
        self.direct.end_session(session_id)
        self.endpoint.router.forget(session_id)
        if self.shared is not None:
            self.shared.closed(session_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        project = scope.get("path_params", {}).get("project", "")
        plane = self.gate.plane
        if not plane.healthy and await plane.ready() is not None:
            await error(
                scope, 503, "unavailable", "the control plane (mcpd) is unreachable; try again shortly"
            )(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = await self._authenticate(scope, project, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        validating = None
        if scope.get("method") == "POST" and headers.get("mcp-method") == "tools/call":
            # the tool's name as the 2026 routing header says (the SDK checks it matches the body)
            tool = decode_header_value(headers.get("mcp-name"))
            validating = await self.endpoint.prepare_tool_call(scope[CALLER_SCOPE_KEY], tool)
        caller: Caller = scope[CALLER_SCOPE_KEY]
        # a legacy initialize (a session-less legacy POST is nothing else) waits for the token's turn
        opening = (
            scope.get("method") == "POST"
            and not headers.get("mcp-session-id")
            and not headers.get("mcp-method")
        )
        admitting = ADMITTING.set((project, caller.principal.token_sha or ""))
        exchange = self.exchanges.open(caller.token_sha, scope)
        try:
            respond = exchange.send(send)
            held = None if self.shared is None else await self.shared.before(scope, caller)
            if held is not None and self.shared is not None:
                respond = self.shared.guard(held, respond)
            with exchange.cancel_scope:
                async with self.openings.turn(caller.token_sha) if opening else contextlib.nullcontext():
                    # a legacy session's plain tools/call is answered directly (direct.py)
                    rest = await self.direct.handle(scope, receive, respond, caller)
                    if rest is not None:
                        await self.sessions.handle_request(scope, rest, respond)
            if held is not None and self.shared is not None:
                await self.shared.after(held, scope)
            if exchange.cancel_scope.cancelled_caught:  # the token stopped working: its stream ends
                await exchange.end(send)
        except TooManyRequestsError as exc:  # over a session cap with nothing of its own to give up
            await error(
                scope,
                429,
                exc.code,
                exc.message,
                {"Retry-After": exc.retry_after_header},
                exc.details,
            )(scope, receive, send)
        finally:
            ADMITTING.reset(admitting)
            self.endpoint.finish_tool_call(validating)
            self.exchanges.close(exchange)
        if exchange.refused and not exchange.started:  # the token stopped working meanwhile
            await error(
                scope,
                401,
                "unauthenticated",
                "token refused: revoked or expired",
                _challenge("invalid_token", "token refused"),
            )(scope, receive, send)

    async def _authenticate(self, scope: Scope, project: str, headers: Headers) -> JSONResponse | None:
        if token_in_query(scope.get("query_string", b"")):
            return error(
                scope,
                400,
                "invalid",
                "tokens are not accepted in the URL; send Authorization: Bearer <token>",
                _challenge("invalid_request", "token in query string"),
            )
        header = headers.get("authorization")
        if not header:
            return error(
                scope,
                401,
                "unauthenticated",
                "an McpToken is required (Authorization: Bearer …)",
                _challenge(),
            )
        scheme, _, bearer = header.partition(" ")
        bearer = bearer.strip()
        if scheme.lower() != "bearer" or not bearer:
            return error(
                scope,
                401,
                "unauthenticated",
                "malformed Authorization header",
                _challenge("invalid_token", "malformed"),
            )
        try:
            answer = await self.gate.check(bearer)
        except Refused as exc:
            reason = exc.reason
            return error(
                scope,
                401,
                "unauthenticated",
                _refusal_message(bearer, reason, project),
                _challenge("invalid_token", f"token {reason}"),
            )
        except ControlPlaneUnavailable as exc:
            logger.warning("introspection failed: %s", exc)
            return error(
                scope, 503, "unavailable", "the control plane (mcpd) is unreachable; try again shortly"
            )
        principal = answer.principal
        assert principal is not None
        if principal.project != project:
            return error(
                scope,
                403,
                "forbidden",
                f'this token belongs to project "{principal.project}", not "{project}"',
                _challenge("insufficient_scope"),
            )
        sha = principal.token_sha or ""
        scope["user"] = self._user(sha)
        scope[CALLER_SCOPE_KEY] = Caller(principal, bearer)
        return None


def loopback_hosts(extra: Sequence[str] = ()) -> list[str]:
    return ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]", *extra]


def loopback_origins(extra: Sequence[str] = ()) -> list[str]:
    return ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *extra]
