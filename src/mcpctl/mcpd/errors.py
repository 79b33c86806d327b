"""Every error leaves mcpd in one JSON shape: {"error": {code, message, details}, "requestId"}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from mcpctl.core.errors import (
    ForbiddenError,
    InsufficientStorageError,
    LimitExceededError,
    McpctlError,
    TooManyRequestsError,
    status_for,
)

logger = logging.getLogger(__name__)

_CODE_BY_HTTP_STATUS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    507: "insufficient_storage",
}


def error_body(
    code: str, message: str, details: dict[str, Any] | None, request_id: str | None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}, "requestId": request_id}


def error_response(error: McpctlError, request_id: str | None) -> JSONResponse:
    status = status_for(error)
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(error, TooManyRequestsError):
        headers = {"Retry-After": error.retry_after_header}
    return JSONResponse(
        error_body(error.code, error.message, error.details, request_id), status_code=status, headers=headers
    )


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    # Never echo the input back: it may hold a password or a secret value.
    errors = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return {"errors": errors[:50]}


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "malformed JSON body"
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"


def install(app: FastAPI, *, on_forbidden: Any) -> None:
    """Register the handlers; `on_forbidden(request, error)` records rbac_denied audit events."""

    async def handle_ours(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, McpctlError)
        if isinstance(exc, ForbiddenError) and not isinstance(exc, LimitExceededError):  # limits are not RBAC
            await on_forbidden(request, exc)
        if isinstance(exc, InsufficientStorageError):
            logger.warning("request failed: %s", exc.message)  # the operator's problem, no traceback
        elif status_for(exc) >= 500:
            logger.error("request failed: %s", exc.message, exc_info=exc)
        return error_response(exc, _request_id(request))

    async def handle_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(
            error_body("invalid", _validation_message(exc), _validation_details(exc), _request_id(request)),
            status_code=400,
        )

    async def handle_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, McpctlError):  # e.g. a streamed body over the limit, wrapped by FastAPI
            return error_response(exc.__cause__, _request_id(request))
        code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return JSONResponse(
            error_body(code, message, None, _request_id(request)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        request_id = _request_id(request)
        # This handler runs outside the request-context middleware: set the id header here.
        return JSONResponse(
            error_body("internal", "internal server error", None, request_id),
            status_code=500,
            headers={"X-Request-Id": request_id} if request_id else None,
        )

    app.add_exception_handler(McpctlError, handle_ours)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
