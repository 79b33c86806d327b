"""Every error leaves mcpd in one JSON shape: {"error": {code, message, details}, "requestId"}."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcpctl.core.errors import (
    ForbiddenError,
    InsufficientStorageError,
    InvalidError,
    LimitExceededError,
    McpctlError,
    TooManyRequestsError,
    status_for,
)

if TYPE_CHECKING:  # FastAPI loads with the REST API (app.py), not with the project endpoint's error shape
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError

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


_MESSAGE_BY_TYPE = {"extra_forbidden": "unknown field", "missing": "required"}
_SHOWN = 3


def _field_path(loc: Sequence[Any], data: Any, *, missing: bool) -> str:
    """Where an error is in the input, as the user wrote it (`spec.healthCheck.intervalSeconds`,
    `spec.args[1]`): pydantic's own steps (union branch and validator names) are not in the input,
    so a step is kept only when the input has it, or when it is the field a `missing` error names."""
    shown: list[str] = []
    node = data
    for i, part in enumerate(loc):
        if _has(node, part):
            node = node[part]
        elif not (missing and i == len(loc) - 1):
            continue
        if isinstance(part, int) and shown:
            shown[-1] += f"[{part}]"
        else:
            shown.append(str(part))
    return ".".join(shown)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, Mapping):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def field_errors(errors: Sequence[Any], data: Any, *, skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as `{field, msg, type, loc}`: `field` is the place in the input `data` for an
    error whose loc starts with `skip` (e.g. `body`), else the loc as it is (a query parameter).
    Never the input value: it may be a secret."""
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        inside = loc[: len(skip)] == list(skip) and len(loc) > len(skip)
        kind = str(err.get("type", ""))
        if inside:
            field = _field_path(loc[len(skip) :], data, missing=kind == "missing")
        else:
            field = ".".join(str(p) for p in loc)
        msg = _MESSAGE_BY_TYPE.get(kind) or str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": field, "msg": msg, "type": kind, "loc": [str(p) for p in loc]})
    return out


def fields_message(fields: Sequence[Mapping[str, Any]]) -> str:
    """`field: problem` for the first few errors, one per field, and how many more there are."""
    parts: list[str] = []
    for item in fields:
        part = f"{item['field']}: {item['msg']}" if item["field"] else str(item["msg"])
        if part not in parts:
            parts.append(part)
    if not parts:
        return "invalid request"
    more = f" (and {len(parts) - _SHOWN} more)" if len(parts) > _SHOWN else ""
    return "; ".join(parts[:_SHOWN]) + more


def invalid_document(exc: ValidationError, document: Mapping[str, Any]) -> InvalidError:
    """A whole object (`{metadata, spec}`) that failed validation, as a 400 naming the fields the
    way `patch` takes them: spec fields bare (`replicas`), labels as `labels`."""
    fields = field_errors(exc.errors(), document)
    for item in fields:
        head, _, rest = item["field"].partition(".")
        if head in ("spec", "metadata"):
            item["field"] = rest
    return InvalidError(fields_message(fields), details={"errors": fields[:50]})


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    return {"errors": field_errors(exc.errors(), exc.body, skip=("body",))[:50]}


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        return "malformed JSON body"
    return fields_message(field_errors(errors, exc.body, skip=("body",)))


def install(app: FastAPI, *, on_forbidden: Any) -> None:
    """Register the handlers; `on_forbidden(request, error)` records rbac_denied audit events."""
    from fastapi.exceptions import RequestValidationError

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
