"""FastAPI dependencies: the app state, the authenticated principal, a kind context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mcpctl.core.errors import ForbiddenError, UnauthenticatedError
from mcpctl.core.policy import ANONYMOUS, Principal, describe
from mcpctl.mcpd.auth import AuthResult
from mcpctl.mcpd.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mcpd
    return state


def auth_result(request: Request) -> AuthResult:
    result: AuthResult | None = getattr(request.state, "auth", None)
    return result or AuthResult(ANONYMOUS)


def authenticated(request: Request) -> Principal:
    """The caller, or 401 (missing, malformed, unknown or expired bearer). No path rules."""
    result = auth_result(request)
    principal = result.principal
    if not principal.is_authenticated:
        reason = result.error or "missing"
        message = "authentication required" if reason == "missing" else f"invalid bearer token ({reason})"
        raise UnauthenticatedError(message, details={"reason": reason})
    return principal


def require_principal(request: Request) -> Principal:
    """The caller, or 401; an McpToken only under its own project's paths (else 403)."""
    principal = authenticated(request)
    if principal.kind == "token":
        scope = f"/api/v1/projects/{principal.project}"
        if request.url.path != scope and not request.url.path.startswith(scope + "/"):
            raise ForbiddenError(
                f"{describe(principal)} may only be used under {scope}/",
                details={"project": principal.project},
            )
    return principal


State = Annotated[AppState, Depends(get_state)]
CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
