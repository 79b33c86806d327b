"""ASGI middleware: request id, Prometheus metrics, body size limit, and authentication."""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpctl.core.errors import InvalidError, McpctlError, PayloadTooLargeError
from mcpctl.core.policy import ANONYMOUS, describe
from mcpctl.mcpd.auth import AuthResult, authenticate, bearer_from_header
from mcpctl.mcpd.context import principal_var, request_id_var
from mcpctl.mcpd.errors import error_response
from mcpctl.mcpd.lastuse import record_token_use

if TYPE_CHECKING:
    from mcpctl.mcpd.state import AppState

API_PREFIX = "/api/v1"
METRICS_PATH = "/metrics"  # authenticated like the API: the metrics name every server
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Metrics:
    """The Prometheus instruments of one app (own registries: several apps may live in one process).

    `registry` is everything (the supervisor adds per-server instance metrics to it); `public` is the
    HTTP request metrics only, labelled by route template, so it names no server."""

    def __init__(self) -> None:
        self.public = CollectorRegistry()
        self.requests = Counter(
            "mcpd_http_requests_total",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=self.public,
        )
        self.latency = Histogram(
            "mcpd_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.public,
        )
        self.registry = CollectorRegistry()
        self.registry.register(self.requests)
        self.registry.register(self.latency)


class RequestContextMiddleware:
    """Request id (X-Request-Id in and out), metrics, and the request body size limit."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes
        # the labelled children, looked up once per label set (`labels()` cost 8 µs per request)
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, length = _request_headers(scope)
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _set_request_id(message, request_id)
            await send(message)

        try:
            if length.isdigit() and int(length) > self.max_body:
                error: McpctlError = PayloadTooLargeError(f"request body larger than {self.max_body} bytes")
                await error_response(error, request_id)(scope, receive, send_wrapper)
            elif b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
                error = InvalidError("the URL must not contain NUL characters")
                await error_response(error, request_id)(scope, receive, send_wrapper)
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            if (
                scope["path"].startswith(API_PREFIX + "/")
                and path.startswith("/")
                and not path.startswith(API_PREFIX)
            ):
                path = API_PREFIX + path  # routes of included routers may carry their own path only
            method = scope["method"]
            counted = self._counted.get((method, path, status))
            if counted is None:
                counted = self._counted[(method, path, status)] = self.metrics.requests.labels(
                    method, path, str(status)
                )
            counted.inc()
            timed = self._timed.get((method, path))
            if timed is None:
                timed = self._timed[(method, path)] = self.metrics.latency.labels(method, path)
            timed.observe(time.perf_counter() - started)
            request_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise PayloadTooLargeError(f"request body larger than {self.max_body} bytes")
            return message

        return receive_limited


def _request_headers(scope: Scope) -> tuple[str, str]:
    """(X-Request-Id, Content-Length) of the request, "" when absent: what starlette's `Headers`
    gives (the first of each), in one pass over the raw headers."""
    request_id = length = None
    for name, value in scope["headers"]:
        if request_id is None and name == b"x-request-id":
            request_id = value.decode("latin-1")
        elif length is None and name == b"content-length":
            length = value.decode("latin-1")
    return request_id or "", length or ""


def _set_request_id(message: Message, request_id: str) -> None:
    """`MutableHeaders(scope=message)["X-Request-Id"] = request_id`, without building the wrapper."""
    item = (b"x-request-id", request_id.encode("latin-1"))
    headers = list(message.get("headers", ()))
    found = [i for i, (name, _) in enumerate(headers) if name == b"x-request-id"]
    for i in reversed(found[1:]):
        del headers[i]
    if found:
        headers[found[0]] = item
    else:
        headers.append(item)
    message["headers"] = headers


class AuthMiddleware:
    """Authenticate once: `scope["state"]["auth"]` holds an AuthResult for every API request (and
    /metrics)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            scope["path"].startswith("/api/") or scope["path"] == METRICS_PATH
        ):
            await self.app(scope, receive, send)
            return
        token = bearer_from_header(Headers(scope=scope).get("authorization"))
        if token is None:
            result = AuthResult(ANONYMOUS)
        elif token == "":
            result = AuthResult(ANONYMOUS, "malformed")
        else:
            state: AppState = scope["app"].state.mcpd
            async with state.db.read() as session:
                result = await authenticate(session, token)
            if result.touch and result.principal.token_id is not None:
                await record_token_use(state.db, result.principal.token_id)
        scope.setdefault("state", {})["auth"] = result
        ctx_token = principal_var.set(
            describe(result.principal) if result.principal.is_authenticated else None
        )
        try:
            await self.app(scope, receive, send)
        finally:
            principal_var.reset(ctx_token)
