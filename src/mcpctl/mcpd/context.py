"""Per-request context (request id, principal) bound in contextvars for logging."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
principal_var: ContextVar[str | None] = ContextVar("principal", default=None)
