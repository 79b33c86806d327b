"""The HTTP adapter of the control-plane port: mcplocal in split mode (`mcplocal serve|stdio`).

Everything is asked of mcpd with the caller's own bearer: introspection
(`GET /api/v1/mcptokens/introspect`), the project (`GET /api/v1/projects/{p}/endpoint`) and every
upstream request (`POST /api/v1/projects/{p}/servers/{s}/mcp`, mcpd's per-server proxy, one JSON-RPC
message per POST, no proxy session). mcpd's proxy enforces the token's scope, the server's tool
filter and records the AuditEvents, so a token cannot write audit rows of its own making.

When mcpd cannot be reached the plane says so (`healthy` false): the endpoint answers 503 and
`/readyz` fails until a probe of mcpd's `/readyz` succeeds again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from mcp.shared.exceptions import MCPError

from mcpctl.core.namespacing import PrefixMode
from mcpctl.core.policy import Principal
from mcpctl.core.rbac import Binding
from mcpctl.mcplocal.ports import (
    TOKEN_REFUSED,
    AuditRecord,
    Caller,
    ControlPlaneUnavailable,
    Introspection,
    Message,
    Notify,
    ProjectView,
    Relay,
    ServerEvent,
    UpstreamFailure,
)
from mcpctl.mcplocal.router import without_envelope

logger = logging.getLogger(__name__)

ACCEPT = "application/json, text/event-stream"
SESSION_HEADER = "X-Mcpctl-Session"  # the downstream session, for mcpd's audit rows


def _binding(raw: Any) -> Binding | None:
    if not isinstance(raw, dict):
        return None
    return Binding(
        role=str(raw.get("role", "")),
        resource=raw.get("resource"),
        name=raw.get("name"),
        action=raw.get("action"),
    )


def _expiry(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class RemoteUpstream:
    def __init__(self, plane: RemotePlane, caller: Caller, name: str, session_id: str | None):
        self.plane, self.caller, self.name, self.session_id = plane, caller, name, session_id

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None,
        notify: Notify | None,
        relay: Relay | None = None,
    ) -> Message:
        """`relay` is not used: mcpd's per-server proxy refuses sampling and elicitation from
        upstreams (one POST carries one answer). That proxy speaks 2025-11-25, so a 2026-07-28
        caller's envelope is stripped."""
        message_id = next(self.plane.ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id, "method": method}
        if params is not None:
            body["params"] = without_envelope(params)
        headers = {"Authorization": f"Bearer {self.caller.bearer}", "Accept": ACCEPT}
        if self.session_id:
            headers[SESSION_HEADER] = self.session_id[:128]
        path = f"/api/v1/projects/{quote(self.caller.project)}/servers/{quote(self.name)}/mcp"
        try:
            async with self.plane.http.stream(
                "POST", path, json=body, headers=headers, timeout=httpx.Timeout(10.0, read=timeout or 600.0)
            ) as response:
                self.plane.mark(True)
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    return await self._events(response, message_id, notify)
                raw = await response.aread()
        except httpx.TransportError as exc:
            self.plane.mark(False)
            raise UpstreamFailure(self.name, f"mcpd is unreachable: {type(exc).__name__}") from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if response.status_code == 401:
            raise self.plane.refused(self.caller)
        if response.status_code in (403, 404):
            raise UpstreamFailure(self.name, f"mcpd refused the request (HTTP {response.status_code})")
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise UpstreamFailure(
                self.name, f"mcpd answered HTTP {response.status_code} without a JSON-RPC answer"
            )
        if response.status_code == 502 and "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            raise UpstreamFailure(self.name, str(error.get("message", "unavailable")))
        return answer

    async def _events(self, response: httpx.Response, message_id: int, notify: Notify | None) -> Message:
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
                continue
            if line or not data:
                continue
            try:
                message = json.loads("\n".join(data))
            except ValueError:
                message = None
            data = []
            if not isinstance(message, dict):
                continue
            if message.get("id") == message_id and ("result" in message or "error" in message):
                return message
            if "method" in message and notify is not None:
                await notify(message)
        raise UpstreamFailure(self.name, "mcpd ended the stream before the answer")


class RemotePlane:
    def __init__(self, mcpd_url: str, *, transport: httpx.AsyncBaseTransport | None = None):
        self.url = mcpd_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10.0, transport=transport)
        self.ids = itertools.count(1)
        self._healthy = True
        self._checked = 0.0
        self._reason: str | None = None
        self._refused: list[Callable[[str], None]] = []

    async def close(self) -> None:
        await self.http.aclose()

    def on_token_refused(self, callback: Callable[[str], None]) -> None:
        """Call `callback(token_sha)` when mcpd answers 401 for a caller's token (revoked, expired
        or deleted since it was introspected)."""
        self._refused.append(callback)

    def refused(self, caller: Caller) -> MCPError:
        """mcpd refused the caller's token: the token gate forgets it and ends its sessions (this
        request is answered 401 when its response has not started), and the error to raise."""
        sha = hashlib.sha256(caller.bearer.encode()).hexdigest()
        for callback in self._refused:
            callback(sha)
        return MCPError(TOKEN_REFUSED, "mcpd refused the token (revoked, expired or deleted)")

    def mark(self, reachable: bool) -> None:
        if reachable != self._healthy:
            (logger.info if reachable else logger.warning)(
                "mcpd at %s is %s", self.url, "reachable again" if reachable else "unreachable"
            )
        self._healthy = reachable

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def _get(self, path: str, bearer: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            response = await self.http.get(path, headers=headers)
        except httpx.TransportError as exc:
            self.mark(False)
            raise ControlPlaneUnavailable(f"mcpd at {self.url}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            self.mark(False)
            raise ControlPlaneUnavailable(f"mcpd at {self.url} answered HTTP {response.status_code}")
        self.mark(True)
        return response

    async def introspect(self, bearer: str) -> Introspection:
        response = await self._get("/api/v1/mcptokens/introspect", bearer)
        body = response.json() if response.status_code == 200 else {}
        if not isinstance(body, dict) or not body.get("ok"):
            reason = body.get("reason") if isinstance(body, dict) else None
            return Introspection(False, str(reason or "unknown"))
        bindings = tuple(b for b in map(_binding, body.get("bindings") or []) if b is not None)
        principal = Principal(
            kind="token",
            bindings=bindings,
            token_name=body.get("tokenName"),
            token_sha=body.get("tokenSha"),
            project=body.get("project"),
            owner=body.get("owner"),
            token_expires_at=_expiry(body.get("expiresAt")),
            reach=frozenset(str(s) for s in body.get("reach") or ()),
        )
        return Introspection(True, principal=principal, expires_at=principal.token_expires_at)

    async def project(self, caller: Caller) -> ProjectView:
        response = await self._get(f"/api/v1/projects/{quote(caller.project)}/endpoint", caller.bearer)
        if response.status_code == 401:
            raise self.refused(caller)
        if response.status_code != 200:
            logger.warning("mcpd refused project %s (HTTP %d)", caller.project, response.status_code)
            return ProjectView(caller.project, ())
        body = response.json()
        mode: PrefixMode = "never" if body.get("toolPrefixMode") == "never" else "always"
        return ProjectView(
            name=caller.project,
            servers=tuple(str(s) for s in body.get("servers", [])),
            prefix_mode=mode,
            separator=str(body.get("toolNameSeparator") or "__"),
        )

    def upstream(self, caller: Caller | None, server: str, session_id: str | None) -> RemoteUpstream:
        if caller is None:
            raise UpstreamFailure(server, "split mode reaches upstreams with a caller's token only")
        return RemoteUpstream(self, caller, server, session_id)

    async def ready(self) -> str | None:
        """Probe mcpd's /readyz; while mcpd is down, at most once a second (requests ask too)."""
        now = time.monotonic()
        if not self._healthy and now - self._checked < 1.0:
            return self._reason
        self._checked = now
        try:
            response = await self._get("/readyz", None)
        except ControlPlaneUnavailable as exc:
            self._reason = str(exc)
            return self._reason
        if response.status_code != 200:
            self.mark(False)
            self._reason = f"mcpd at {self.url} is not ready (HTTP {response.status_code})"
            return self._reason
        return None

    def watch(self, callback: ServerEvent) -> None:
        """Split mode hears no upstream notifications outside requests: lists refresh when the
        discovery TTL ends (mcpd's per-server proxy streams them per proxy session only)."""

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        """Nothing to do: mcpd's per-server proxy records these calls itself."""
