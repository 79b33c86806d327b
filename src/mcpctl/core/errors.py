"""The one error tree of mcpctl.

    McpctlError                      500 internal
    ├── InvalidError                 400 invalid            (bad input, bad reference, bad TTL …)
    │   └── UsageError               400 invalid            (a malformed flag value, e.g. --roleBindings)
    ├── UnauthenticatedError         401 unauthenticated    (missing/unknown/expired credentials)
    ├── ForbiddenError               403 forbidden
    │   └── LimitExceededError       403 <code of the limit> (e.g. token_limit_exceeded)
    ├── NotFoundError                404 not_found
    ├── ConflictError                409 conflict
    │   └── AlreadyExistsError       409 already_exists
    ├── PayloadTooLargeError         413 payload_too_large
    ├── TooManyRequestsError         429 too_many_requests  (a fair-share limit; says when to retry)
    ├── InsufficientStorageError     507 insufficient_storage (the database's disk is full)
    └── UpstreamError                502 upstream_error
        └── UpstreamTimeoutError     504 upstream_timeout

`STATUS_BY_ERROR` is the one table from error class to HTTP status; mcpd renders every error as
``{"error": {"code", "message", "details"}, "requestId"}`` (a 429 also carries `Retry-After`).
"""

from __future__ import annotations

import math
from typing import Any


class McpctlError(Exception):
    """Base of every error mcpctl raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code


class InvalidError(McpctlError):
    code = "invalid"


class UsageError(InvalidError):
    code = "invalid"


class UnauthenticatedError(McpctlError):
    code = "unauthenticated"


class ForbiddenError(McpctlError):
    code = "forbidden"


class LimitExceededError(ForbiddenError):
    code = "limit_exceeded"


class NotFoundError(McpctlError):
    code = "not_found"


class ConflictError(McpctlError):
    code = "conflict"


class AlreadyExistsError(ConflictError):
    code = "already_exists"


class PayloadTooLargeError(McpctlError):
    code = "payload_too_large"


class TooManyRequestsError(McpctlError):
    """Over a limit that protects shared capacity (login throttle, password-hashing queue, sessions):
    the caller, and only the caller, waits `retry_after` seconds (DESIGN §12)."""

    code = "too_many_requests"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        details: dict[str, Any] | None = None,
        code: str | None = None,
    ):
        super().__init__(message, details=details, code=code)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` in whole seconds (RFC 9110: a non-negative integer), never 0."""
        return str(max(1, math.ceil(self.retry_after)))


class InsufficientStorageError(McpctlError):
    """A write failed for lack of space (disk or database quota): the caller may retry later, and
    the operator must act; nothing is wrong with the request."""

    code = "insufficient_storage"


class UpstreamError(McpctlError):
    code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    code = "upstream_timeout"


# Most specific classes first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[McpctlError], int], ...] = (
    (UsageError, 400),
    (InvalidError, 400),
    (UnauthenticatedError, 401),
    (LimitExceededError, 403),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (TooManyRequestsError, 429),
    (InsufficientStorageError, 507),
    (UpstreamTimeoutError, 504),
    (UpstreamError, 502),
    (McpctlError, 500),
)


def status_for(error: McpctlError) -> int:
    """HTTP status for an error, from the one table."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 500  # pragma: no cover - McpctlError is the last row


# kubectl-style reason phrases, used by the CLI: "Error from server (Forbidden): …".
REASON_BY_STATUS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    507: "InsufficientStorage",
}
