"""Raw HTTP around the SDK client: what it sent and got back, replaying a request, reading an answer,
and turning an exception into a step failure of the right kind."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED
from pydantic import ValidationError

from mcpctl.cli.testmcp.report import StepFailed

_NOT_REPLAYED = frozenset({"content-length", "host", "transfer-encoding", "connection"})


@dataclass
class Exchange:
    """One HTTP request the SDK made, and the status and headers it got (None while unanswered)."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes
    rpc_method: str | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)


class Recorder:
    """httpx2 event hooks that keep every exchange, so steps can look behind the SDK's back."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._by_request: dict[int, Exchange] = {}

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self._on_request], "response": [self._on_response]}

    async def _on_request(self, request: httpx2.Request) -> None:
        content = request.content if request.method == "POST" else b""
        exchange = Exchange(
            request.method, str(request.url), dict(request.headers), content, _rpc_method(content)
        )
        self.exchanges.append(exchange)
        self._by_request[id(request)] = exchange

    async def _on_response(self, response: httpx2.Response) -> None:
        exchange = self._by_request.pop(id(response.request), None)
        if exchange is not None:
            exchange.status = response.status_code
            exchange.response_headers = dict(response.headers)

    def mark(self) -> int:
        return len(self.exchanges)

    def since(self, mark: int) -> list[Exchange]:
        return self.exchanges[mark:]

    def first_post(self) -> Exchange | None:
        return next((e for e in self.exchanges if e.method == "POST"), None)

    def last_rpc(self, method: str) -> Exchange | None:
        return next((e for e in reversed(self.exchanges) if e.rpc_method == method), None)


def _rpc_method(content: bytes) -> str | None:
    try:
        message = json.loads(content) if content else None
    except ValueError:
        return None
    method = message.get("method") if isinstance(message, dict) else None
    return method if isinstance(method, str) else None


async def replay(
    client: httpx2.AsyncClient,
    exchange: Exchange,
    *,
    drop: Iterable[str] = (),
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    method: str | None = None,
) -> httpx2.Response:
    """Send a recorded request again, minus the `drop` headers, plus `headers`, maybe with a new body."""
    dropped = _NOT_REPLAYED | {name.lower() for name in drop}
    sent = {k: v for k, v in exchange.headers.items() if k.lower() not in dropped}
    sent.update(headers or {})
    body = exchange.content if content is None else content
    return await client.request(method or exchange.method, exchange.url, headers=sent, content=body or None)


def rpc_answer(response: httpx2.Response, request_id: Any) -> dict[str, Any] | None:
    """The JSON-RPC answer to `request_id` in a JSON or an SSE body, or None."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        candidates = [response.text]
    elif kind == "text/event-stream":
        candidates = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    else:
        return None
    for text in candidates:
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == request_id:
            return message
    return None


# ---- exceptions → step failures ---------------------------------------------------------------------


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or the exception itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def classify(exc: BaseException, exchanges: list[Exchange], *, token: bool, timeout: float) -> StepFailed:
    """Why a step failed: transport (incl. timeouts), auth (401/403 seen), or contract."""
    if isinstance(exc, StepFailed):
        return exc
    found = leaves(exc)
    transport = next((e for e in found if isinstance(e, httpx2.TransportError | TimeoutError)), None)
    if transport is not None:
        return StepFailed("transport", _transport_detail(transport, timeout))
    denied = next((e for e in exchanges if e.status in (401, 403)), None)
    if denied is not None:
        return StepFailed("auth", auth_detail(denied, token=token), {"httpStatus": denied.status})
    leaf = found[0]
    if isinstance(leaf, MCPError):
        if leaf.code == CONNECTION_CLOSED and not _answered_with_error(exchanges):
            return StepFailed("transport", f"the connection closed without an answer ({leaf.message})")
        return StepFailed("contract", _mcp_error_detail(leaf, exchanges), {"code": leaf.code})
    if isinstance(leaf, ValidationError):
        return StepFailed("contract", f"the answer does not match the MCP schema: {validation_summary(leaf)}")
    return StepFailed("contract", f"{type(leaf).__name__}: {leaf}")


def _answered_with_error(exchanges: list[Exchange]) -> bool:
    return any(e.status is not None and e.status >= 400 for e in exchanges)


def _transport_detail(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return f"no answer within {timeout:g} s"
    text = str(exc) or type(exc).__name__
    with contextlib.suppress(RuntimeError):  # httpx2 raises when the error carries no request
        if isinstance(exc, httpx2.RequestError):
            text = f"{exc.request.method} {exc.request.url}: {text}"
    if isinstance(exc, httpx2.ConnectError):
        if any(marker in text for marker in ("SSL", "CERTIFICATE", "TLS")):
            return f"TLS handshake failed: {text}"
        return f"cannot connect: {text}"
    return f"the connection failed: {text}"


def auth_detail(exchange: Exchange, *, token: bool) -> str:
    challenge = exchange.response_headers.get("www-authenticate")
    what = "with the given token" if token else "without a token (give --token)"
    detail = f"HTTP {exchange.status} {what}"
    return f"{detail}; WWW-Authenticate: {challenge}" if challenge else detail


def _mcp_error_detail(exc: MCPError, exchanges: list[Exchange]) -> str:
    error = f"JSON-RPC error {exc.code}: {exc.message}"
    failed = next((e for e in reversed(exchanges) if e.status is not None and e.status >= 400), None)
    if failed is None:
        return error
    return f"{failed.rpc_method or failed.method} → HTTP {failed.status} ({error})"


def validation_summary(exc: ValidationError, tool_names: dict[int, str] | None = None, limit: int = 3) -> str:
    """The first few complaints as `path: message`; `tools[i]` reads as the tool's name when known."""
    parts = []
    for error in exc.errors()[:limit]:
        loc = list(error["loc"])
        prefix = ""
        if (
            tool_names
            and len(loc) >= 2
            and loc[0] == "tools"
            and isinstance(loc[1], int)
            and loc[1] in tool_names
        ):
            prefix, loc = f"tool {tool_names[loc[1]]!r}: ", loc[2:]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        parts.append(f"{prefix}{path}: {error['msg']}" if path else f"{prefix}{error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
