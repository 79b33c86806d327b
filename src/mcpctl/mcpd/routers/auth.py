"""Login sessions: POST /auth/login, POST /auth/logout, GET /auth/me."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from mcpctl.core.errors import UnauthenticatedError
from mcpctl.mcpd import audit
from mcpctl.mcpd import auth as auth_service
from mcpctl.mcpd.deps import CurrentPrincipal, State, auth_result
from mcpctl.mcpd.kinds.users import UserHandler
from mcpctl.mcpd.schemas import ErrorOut, LoginIn, LoginOut, MeOut
from mcpctl.storage import tables

router = APIRouter(prefix="/auth", tags=["auth"])
_users = UserHandler()


@router.post(
    "/login",
    response_model=LoginOut,
    summary="Log in with e-mail and password",
    responses={
        429: {
            "model": ErrorOut,
            "description": "Too many failed logins from this address or for this account, or too many "
            "logins being checked at once (`Retry-After` says when to try again)",
        }
    },
)
async def login(body: LoginIn, request: Request, state: State) -> Any:
    """Failed attempts are throttled per client address and per account before any password work;
    a throttled attempt costs no Argon2 and no database write (DESIGN §12)."""
    ttl = timedelta(seconds=state.settings.session_ttl_seconds)
    client = request.client
    attempt = state.login_throttle.admit(client.host if client else None, body.email)
    proven = await auth_service.check_password(
        state.db, state.passwords, state.hashing, body.email, body.password
    )
    if proven is not None:
        state.login_throttle.succeeded(attempt)
    async with state.db.write() as session:
        audit.record(
            session,
            "login",
            outcome="ok" if proven else "denied",
            user=body.email.strip().lower()[:320],
            request_id=getattr(request.state, "request_id", None),
            client_addr=audit.client_addr(request),
        )
        if proven is not None:
            user, rehash = proven
            token, record = await auth_service.start_session(session, user.id, ttl, rehash)
            principal = await auth_service.principal_for_user(session, user)
            user_obj = await _users.to_object(state.context(session, principal), user)
    if proven is None:
        raise UnauthenticatedError("invalid email or password", details={"reason": "invalid_credentials"})
    return {"token": token, "expiresAt": record.expires_at, "user": user_obj}


@router.post("/logout", status_code=204, summary="End the current login session")
async def logout(request: Request, state: State, principal: CurrentPrincipal) -> Response:
    session_id = auth_result(request).session_id
    async with state.db.write() as session:
        await session.execute(sa.delete(tables.LoginSession).where(tables.LoginSession.id == session_id))
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, summary="Who am I: user, groups and effective bindings")
async def me(state: State, principal: CurrentPrincipal) -> Any:
    async with state.db.read() as session:
        user = await _users.require(session, principal.name or "")
        user_obj = await _users.to_object(state.context(session, principal), user)
    return {
        "user": user_obj,
        "groups": sorted(principal.groups),
        "bindings": [b.to_dict() for b in principal.bindings],
    }
