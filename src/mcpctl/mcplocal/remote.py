"""The split adapter of the control-plane port: mcplocal in split mode (`mcplocal serve|stdio`).

Callers' tokens and every upstream request travel on the data-plane link (`mcplocal/link.py`, one
WebSocket to mcpd): mcpd runs each request through the plane its embedded endpoint uses — the token's
reach, the server's tool filter, the 2026-07-28 pass-through, sampling/elicitation/roots asked of the
caller's client, progress, cancellation — and records the AuditEvents itself, so a token cannot write
audit rows of its own making. mcpd tells the link about upstream notifications outside requests,
configuration changes and tokens that end. The project view comes over HTTP
(`GET /api/v1/projects/{p}/endpoint`, with the caller's bearer).

When mcpd cannot be reached the plane says so (`healthy` false): the endpoint answers 503 and
`/readyz` fails until a probe of mcpd's `/readyz` succeeds again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mcp.shared.exceptions import MCPError

from mcpctl.core.namespacing import PrefixMode
from mcpctl.core.policy import Principal
from mcpctl.core.proxymodels import UNRESOLVED, Stage
from mcpctl.core.rbac import Binding
from mcpctl.mcplocal.link import CallFailed, LinkClient, LinkDown, LinkRefused
from mcpctl.mcplocal.ports import (
    TOKEN_REFUSED,
    AuditRecord,
    Caller,
    ControlPlaneUnavailable,
    Introspection,
    Message,
    Notify,
    ProjectPrompt,
    ProjectView,
    Relay,
    ServerEvent,
    UpstreamFailure,
)

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)


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


def _stage(raw: dict[str, Any]) -> Stage:
    config = raw.get("config")
    return Stage(str(raw.get("type", "")), dict(config) if isinstance(config, dict) else {})


def _prompt(raw: dict[str, Any]) -> ProjectPrompt:
    description = raw.get("description")
    priority = raw.get("priority")
    return ProjectPrompt(
        name=str(raw.get("name", "")),
        text=str(raw.get("text", "")),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 5,
        tags=tuple(str(tag) for tag in raw.get("tags") or []),
        description=description if isinstance(description, str) else None,
    )


def view_from(project: str, body: dict[str, Any]) -> ProjectView:
    """The project view GET /projects/{p}/endpoint describes. A model named without its stages (an
    mcpd that does not say) is served failing, never as `direct`."""
    mode: PrefixMode = "never" if body.get("toolPrefixMode") == "never" else "always"
    model = str(body.get("proxyModel") or "direct")
    raw_stages = body.get("stages")
    if not isinstance(raw_stages, list):
        raw_stages = [] if model == "direct" else [{"type": UNRESOLVED}]
    return ProjectView(
        name=project,
        servers=tuple(str(s) for s in body.get("servers", [])),
        prefix_mode=mode,
        separator=str(body.get("toolNameSeparator") or "__"),
        proxy_model=model,
        stages=tuple(_stage(raw) if isinstance(raw, dict) else Stage(UNRESOLVED) for raw in raw_stages),
        prompts=tuple(_prompt(raw) for raw in body.get("prompts") or [] if isinstance(raw, dict)),
    )


class RemoteUpstream:
    """A server of the project across the data-plane link: mcpd runs the request through the same
    plane as the embedded endpoint, with the caller's notifications, questions and cancellation
    carried both ways. mcpd applies the server's own call timeout; a shorter deadline (the router
    has none but discovery's) cancels the call, which the link carries too."""

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
        try:
            answer = await self.plane.link.request(
                self.caller.bearer,
                self.name,
                method,
                params,
                notify=notify,
                relay=relay,
                session=self.session_id,
            )
        except LinkDown as exc:
            self.plane.mark(False)
            raise UpstreamFailure(self.name, f"mcpd is unreachable: {exc}") from None
        except LinkRefused:
            raise self.plane.refused(self.caller) from None
        except CallFailed as exc:
            self.plane.mark(True)
            raise UpstreamFailure(self.name, str(exc), exc.code) from None
        self.plane.mark(True)
        return answer


class RemotePlane:
    # a view is read with the caller's token: filtered by its reach as mcpd has it now, and refused
    # (its sessions end) once it is revoked; so it is cached per token
    views_per_token = True

    def __init__(self, mcpd_url: str):
        import httpx  # here: an all-in-one mcpd makes a remote plane only for another replica

        self.url = mcpd_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10.0)
        self.link = LinkClient(
            self.url, on_event=self._on_event, on_changed=self._on_changed, on_ended=self._on_ended
        )
        self._healthy = True
        self._checked = 0.0
        self._reason: str | None = None
        self._refused: list[Callable[[str], None]] = []
        self._changed: list[Callable[[], None]] = []
        self._watchers: list[ServerEvent] = []

    async def close(self) -> None:
        await self.link.close()
        await self.http.aclose()

    def on_changed(self, callback: Callable[[], None]) -> None:
        """Call `callback()` when mcpd says projects, servers, bindings or users changed (or the link
        was down and may have missed it): cached views and introspections are stale."""
        self._changed.append(callback)

    def _on_changed(self) -> None:
        for callback in self._changed:
            callback()

    def _on_ended(self, token_sha: str) -> None:
        for callback in self._refused:
            callback(token_sha)

    async def _on_event(self, server: str, message: Message) -> None:
        for callback in self._watchers:
            await callback(server, message)

    def on_token_refused(self, callback: Callable[[str], None]) -> None:
        """Call `callback(token_sha)` when mcpd refuses a caller's token or says it ended (revoked,
        expired or deleted since it was introspected)."""
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
        import httpx

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
        """Asked on the link, which then holds the token for this caller's calls."""
        try:
            body = await self.link.authenticate(bearer)
        except LinkDown as exc:
            self.mark(False)
            raise ControlPlaneUnavailable(f"mcpd at {self.url}: {exc}") from exc
        self.mark(True)
        if not body.get("ok"):
            return Introspection(False, str(body.get("reason") or "unknown"))
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
        return view_from(caller.project, response.json())

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
        """Upstream notifications outside requests, as mcpd hears them, for the servers the link's
        tokens reach (list_changed, resource updates, log lines, instances going and coming)."""
        self._watchers.append(callback)

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        """Nothing to do: mcpd records the calls made over the link itself."""
