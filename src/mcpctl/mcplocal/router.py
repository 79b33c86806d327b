"""The project router: one MCP endpoint over a project's servers (DESIGN §5).

Discovery: each server's tools, prompts, resources and resource templates are fetched whole (every
upstream page) and cached per server with a positive and a negative TTL, with a short timeout of
their own, and invalidated when a server sends list_changed or the project changes. A server that
fails costs one discovery timeout, then nothing until its negative TTL ends; lists carry what the
healthy servers have.

Naming: `always` exposes `<server><sep><name>` for tools and prompts; `never` exposes upstream
names (a collision found at run time hides the later server's item and is logged; configuration
refuses it up front). Resources keep their URIs (the first server in project order wins).

Pages: the gateway's own cursor (`core.cursors`) names a server and an offset into its cached list,
plus a fingerprint of the caller's server list, so a stale cursor is refused rather than misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND, SERVER_INFO_META_KEY

from mcpctl.core import cursors
from mcpctl.core.errors import InvalidError
from mcpctl.core.namespacing import Naming
from mcpctl.core.ttlcache import TtlCache
from mcpctl.mcplocal.ports import (
    AuditRecord,
    Caller,
    ControlPlane,
    Message,
    Notify,
    ProjectView,
    Relay,
    UpstreamFailure,
)

logger = logging.getLogger(__name__)

RESOURCE_NOT_FOUND = -32002
MAX_UPSTREAM_PAGES = 100


@dataclass(frozen=True)
class ListKind:
    method: str
    field: str  # the result's list field
    key: str  # what identifies an item
    prefixed: bool  # exposed under the server's prefix in `always` mode
    changed: str  # the list_changed notification that invalidates it


KINDS: dict[str, ListKind] = {
    "tools": ListKind("tools/list", "tools", "name", True, "notifications/tools/list_changed"),
    "prompts": ListKind("prompts/list", "prompts", "name", True, "notifications/prompts/list_changed"),
    "resources": ListKind(
        "resources/list", "resources", "uri", False, "notifications/resources/list_changed"
    ),
    "resourceTemplates": ListKind(
        "resources/templates/list",
        "resourceTemplates",
        "uriTemplate",
        False,
        "notifications/resources/list_changed",
    ),
}


@dataclass(frozen=True)
class RouterSettings:
    discovery_positive_seconds: float = 60.0
    discovery_negative_seconds: float = 10.0
    discovery_timeout_seconds: float = 5.0
    project_ttl_seconds: float = 5.0
    page_size: int = 500


@dataclass
class LiveSession:
    """A downstream session that can take notifications outside a request (legacy GET stream)."""

    key: str
    project: str
    caller: Caller
    send: Callable[[str, dict[str, Any] | None], Awaitable[None]]
    subscriptions: set[str]
    seen: float


AuditSink = Callable[[AuditRecord], None]


def _rpc_error(error: Any) -> MCPError:
    if isinstance(error, dict):
        code = error.get("code")
        return MCPError(
            code if isinstance(code, int) else -32603, str(error.get("message", "error")), error.get("data")
        )
    return MCPError(-32603, "the upstream answered with a malformed error")


def _strip_server_info(result: dict[str, Any]) -> dict[str, Any]:
    """The upstream's serverInfo stamp gives way to mcplocal's own (the SDK stamps it)."""
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        rest = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
        result = {**result}
        if rest:
            result["_meta"] = rest
        else:
            del result["_meta"]
    return result


def without_envelope(params: dict[str, Any]) -> dict[str, Any]:
    """The caller's params without the 2026-07-28 envelope (`io.modelcontextprotocol/*` in `_meta`:
    protocol version, client info and capabilities, log level). The router hands upstreams the
    caller's params as they came; an upstream adapter that sends them down a 2025-11-25 session
    strips the envelope with this (a 2025-era server refuses a request carrying it)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not any(str(k).startswith(_RESERVED_META) for k in meta):
        return params
    kept = {k: v for k, v in meta.items() if not str(k).startswith(_RESERVED_META)}
    out = {k: v for k, v in params.items() if k != "_meta"}
    if kept:
        out["_meta"] = kept
    return out


_RESERVED_META = "io.modelcontextprotocol/"


def _template_regex(template: str) -> re.Pattern[str]:
    """A loose RFC 6570 match: each `{…}` expression matches any run of characters."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts) + r"\Z", re.DOTALL)


@dataclass
class _Audited:
    """What an audited request has found out so far (recorded when it ends, however it ends)."""

    server: str | None
    target: str
    outcome: str = "error"


class Router:
    def __init__(self, plane: ControlPlane, settings: RouterSettings, audit: AuditSink | None = None):
        self.plane, self.settings, self._audit = plane, settings, audit
        self.discovery: TtlCache[tuple[str, str], tuple[dict[str, Any], ...]] = TtlCache(
            settings.discovery_positive_seconds, settings.discovery_negative_seconds
        )
        self.projects: TtlCache[tuple[str, str], ProjectView] = TtlCache(settings.project_ttl_seconds, 1.0)
        self.sessions: dict[str, LiveSession] = {}
        self._known: dict[str, tuple[str, ...]] = {}
        self._session_idle = 3600.0
        plane.watch(self._on_server_event)

    # ---- the project and its servers -----------------------------------------------------------

    async def project(self, caller: Caller) -> ProjectView:
        return await self.projects.get((caller.project, caller.token_sha), lambda: self.plane.project(caller))

    async def servers(self, caller: Caller) -> tuple[ProjectView, tuple[str, ...]]:
        view = await self.project(caller)
        self._known[view.name] = view.servers
        return view, tuple(s for s in view.servers if caller.may_use(s))

    def known_servers(self, project: str) -> tuple[str, ...]:
        """The servers of a project as last seen (for routing notifications)."""
        return self._known.get(project, ())

    def invalidate(self, server: str | None = None) -> None:
        """Forget discovery (one server's, or all) and project views: called when the project's
        configuration changes (embedded) or an upstream says its lists changed."""
        if server is None:
            self.discovery.invalidate()
        else:
            for kind in KINDS:
                self.discovery.invalidate((server, kind))
        self.projects.invalidate()

    # ---- discovery -----------------------------------------------------------------------------

    async def _fetch(self, caller: Caller | None, server: str, kind: ListKind) -> tuple[dict[str, Any], ...]:
        upstream = self.plane.upstream(caller, server, None)
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        async with asyncio.timeout(self.settings.discovery_timeout_seconds):
            for _ in range(MAX_UPSTREAM_PAGES):
                params = {"cursor": cursor} if cursor else None
                answer = await upstream.request(kind.method, params, timeout=None, notify=None)
                if "error" in answer:
                    error = answer["error"] if isinstance(answer["error"], dict) else {}
                    if error.get("code") == METHOD_NOT_FOUND:
                        return ()  # the server does not offer this kind: an empty list, not a failure
                    raise UpstreamFailure(server, f"{kind.method} failed: {error.get('message', error)}")
                result = answer.get("result") or {}
                page = result.get(kind.field) if isinstance(result, dict) else None
                if not isinstance(page, list):
                    raise UpstreamFailure(server, f"{kind.method} answered without a {kind.field} list")
                items.extend(
                    item for item in page if isinstance(item, dict) and isinstance(item.get(kind.key), str)
                )
                cursor = result.get("nextCursor")
                if not cursor or not isinstance(cursor, str):
                    break
        return tuple(items)

    async def discover(
        self, caller: Caller | None, server: str, kind_name: str
    ) -> tuple[dict[str, Any], ...] | None:
        """A server's items of one kind (cached); None when the server cannot say (logged)."""
        kind = KINDS[kind_name]
        try:
            return await self.discovery.get((server, kind_name), lambda: self._fetch(caller, server, kind))
        except TimeoutError:
            logger.warning(
                "discovery: server %s did not list %s within the discovery timeout", server, kind.field
            )
        except UpstreamFailure as exc:
            logger.warning("discovery: server %s: %s", server, exc)
        except Exception:  # boundary: one broken upstream never breaks the endpoint
            logger.exception("discovery: server %s failed", server)
        return None

    async def catalog(
        self, caller: Caller, kind_name: str, servers: Sequence[str]
    ) -> dict[str, tuple[dict[str, Any], ...] | None]:
        found = await asyncio.gather(*(self.discover(caller, s, kind_name) for s in servers))
        return dict(zip(servers, found, strict=True))

    def _exposed(
        self, naming: Naming, kind: ListKind, server: str, items: Sequence[dict[str, Any]], seen: set[str]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in items:
            key = item[kind.key]
            exposed = naming.expose(server, key) if kind.prefixed else key
            if exposed in seen:
                logger.warning(
                    "%s %r of server %s is hidden: an earlier server offers the same name",
                    kind.field,
                    key,
                    server,
                )
                continue
            seen.add(exposed)
            out.append({**item, kind.key: exposed} if exposed != key else item)
        return out

    async def list_items(self, caller: Caller, kind_name: str, cursor: str | None) -> dict[str, Any]:
        kind = KINDS[kind_name]
        view, servers = await self.servers(caller)
        naming = Naming(view.prefix_mode, view.separator, servers)
        try:
            position = cursors.decode(servers, cursor) if cursor else cursors.Position(0, None)
            offset = int(position.upstream or 0)
        except (InvalidError, ValueError) as exc:
            raise MCPError(INVALID_PARAMS, f"Invalid params: {exc}") from None
        if not servers:
            return {kind.field: []}
        catalog = await self.catalog(caller, kind_name, servers)
        # names already taken by servers before the page start (so a page never repeats a name)
        seen: set[str] = set()
        for earlier in servers[: position.server]:
            self._exposed(naming, kind, earlier, catalog[earlier] or (), seen)
        page: list[dict[str, Any]] = []
        index = position.server
        next_cursor: str | None = None
        while index < len(servers):
            server = servers[index]
            exposed = self._exposed(naming, kind, server, catalog[server] or (), seen)
            room = self.settings.page_size - len(page)
            chunk = exposed[offset : offset + room]
            page.extend(chunk)
            if offset + len(chunk) < len(exposed):
                next_cursor = cursors.encode(servers, cursors.Position(index, str(offset + len(chunk))))
                break
            index, offset = index + 1, 0
            if len(page) >= self.settings.page_size and index < len(servers):
                next_cursor = cursors.encode(servers, cursors.Position(index, None))
                break
        result: dict[str, Any] = {kind.field: page}
        if next_cursor:
            result["nextCursor"] = next_cursor
        return result

    async def warm_tools(self, caller: Caller, exposed: str | None = None) -> None:
        """Make the caller's project view and tool lists cached (see `cached_tool_schema`): in
        `always` mode only those of the servers `exposed` can name, so a call to one server never
        waits for another's discovery."""
        view, servers = await self.servers(caller)
        if exposed is not None and view.prefix_mode == "always":
            naming = Naming(view.prefix_mode, view.separator, servers)
            servers = tuple(server for server, _ in naming.candidates(exposed))
        await self.catalog(caller, "tools", servers)

    def cached_tool_schema(self, caller: Caller, exposed: str) -> dict[str, Any] | None:
        """An exposed tool's inputSchema from what is cached now, without I/O: None when the tool is
        not offered to this caller or its server's listing is not at hand."""
        view = self.projects.peek((caller.project, caller.token_sha))
        if view is None:
            return None
        servers = tuple(s for s in view.servers if caller.may_use(s))
        if view.prefix_mode == "always":
            candidates = Naming(view.prefix_mode, view.separator, servers).candidates(exposed)
        else:
            candidates = [(server, exposed) for server in servers]
        for server, name in candidates:
            for item in self.discovery.peek((server, "tools")) or ():
                if item["name"] == name:
                    schema = item.get("inputSchema")
                    return schema if isinstance(schema, dict) else None
        return None

    # ---- routing -------------------------------------------------------------------------------

    async def _resolve_name(self, caller: Caller, kind_name: str, exposed: str) -> tuple[str, str] | None:
        view, servers = await self.servers(caller)
        naming = Naming(view.prefix_mode, view.separator, servers)
        if view.prefix_mode == "always":
            candidates = naming.candidates(exposed)
            if len(candidates) <= 1:
                return candidates[0] if candidates else None
            # an ambiguous prefix: the server the listing shows it for (the first that offers it)
            catalog = await self.catalog(caller, kind_name, [server for server, _ in candidates])
        else:
            candidates = [(server, exposed) for server in servers]
            catalog = await self.catalog(caller, kind_name, servers)
        for server, name in candidates:
            if any(item["name"] == name for item in catalog[server] or ()):
                return server, name
        return naming.resolve(exposed)  # None in never mode; a server may offer names it does not list

    async def _resolve_uri(self, caller: Caller, uri: str) -> list[str]:
        """The servers that may hold `uri`, best first: one that lists it, then template matches,
        then every other server (a server may serve URIs it does not list)."""
        _, servers = await self.servers(caller)
        resources = await self.catalog(caller, "resources", servers)
        for server in servers:
            if any(item["uri"] == uri for item in resources[server] or ()):
                return [server]
        templates = await self.catalog(caller, "resourceTemplates", servers)
        matching = [
            s
            for s in servers
            if any(_template_regex(t["uriTemplate"]).match(uri) for t in templates[s] or ())
        ]
        return matching + [s for s in servers if s not in matching]

    async def _forward(
        self,
        caller: Caller,
        server: str,
        method: str,
        params: dict[str, Any],
        notify: Notify | None,
        session: str | None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        upstream = self.plane.upstream(caller, server, session)
        answer = await upstream.request(method, params, timeout=None, notify=notify, relay=relay)
        if "error" in answer:
            raise _rpc_error(answer["error"])
        result = answer.get("result")
        if not isinstance(result, dict):
            raise MCPError(
                -32603, f'server "{server}" answered {method} without a result', {"server": server}
            )
        return _strip_server_info(result)

    @contextlib.contextmanager
    def _audited(
        self,
        kind: str,
        caller: Caller,
        target: object,
        session: str | None,
        request_id: str | None,
        client_addr: str | None,
    ) -> Iterator[_Audited]:
        started = time.perf_counter()
        audited = _Audited(None, str(target))
        try:
            yield audited
        finally:
            if self._audit is not None:
                self._audit(
                    AuditRecord(
                        kind,
                        caller.principal,
                        caller.project,
                        audited.server,
                        audited.target[:500],
                        audited.outcome,
                        int((time.perf_counter() - started) * 1000),
                        session,
                        request_id,
                        client_addr,
                    )
                )

    async def call_tool(
        self,
        caller: Caller,
        params: dict[str, Any],
        notify: Notify | None,
        *,
        session: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        name = params.get("name")
        with self._audited("tool_call", caller, name, session, request_id, client_addr) as audited:
            target = await self._resolve_name(caller, "tools", name) if isinstance(name, str) else None
            if target is None:
                audited.outcome = "denied"
                raise MCPError(INVALID_PARAMS, f"Unknown tool: {name!r}")
            server, upstream_name = target
            audited.server, audited.target = target  # the upstream's name, as mcpd's proxy records it
            try:
                result = await self._forward(
                    caller, server, "tools/call", {**params, "name": upstream_name}, notify, session, relay
                )
            except UpstreamFailure as exc:
                return {
                    "content": [{"type": "text", "text": f'server "{server}" is unavailable: {exc}'}],
                    "isError": True,
                }
            audited.outcome = "error" if result.get("isError") else "ok"
            return result

    async def get_prompt(
        self,
        caller: Caller,
        params: dict[str, Any],
        notify: Notify | None,
        *,
        session: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        name = params.get("name")
        with self._audited("prompt_get", caller, name, session, request_id, client_addr) as audited:
            target = await self._resolve_name(caller, "prompts", name) if isinstance(name, str) else None
            if target is None:
                audited.outcome = "denied"
                raise MCPError(INVALID_PARAMS, f"Unknown prompt: {name!r}")
            server, upstream_name = target
            audited.server, audited.target = target
            try:
                result = await self._forward(
                    caller, server, "prompts/get", {**params, "name": upstream_name}, notify, session, relay
                )
            except UpstreamFailure as exc:
                raise MCPError(
                    exc.code, f'server "{server}" is unavailable: {exc}', {"server": server}
                ) from None
            audited.outcome = "ok"
            return result

    async def read_resource(
        self,
        caller: Caller,
        params: dict[str, Any],
        notify: Notify | None,
        *,
        session: str | None = None,
        request_id: str | None = None,
        client_addr: str | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        uri = params.get("uri")
        with self._audited("resource_read", caller, uri, session, request_id, client_addr) as audited:
            if not isinstance(uri, str):
                raise MCPError(INVALID_PARAMS, "Invalid params: uri is required")
            last: MCPError | None = None
            for server in await self._resolve_uri(caller, uri):
                audited.server = server
                try:
                    result = await self._forward(
                        caller, server, "resources/read", params, notify, session, relay
                    )
                except UpstreamFailure as exc:
                    last = MCPError(exc.code, f'server "{server}" is unavailable: {exc}', {"server": server})
                    continue
                except MCPError as exc:
                    last = exc
                    if exc.code in (RESOURCE_NOT_FOUND, INVALID_PARAMS, METHOD_NOT_FOUND):
                        continue
                    raise
                audited.outcome = "ok"
                return result
            audited.server = None
            raise last or MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})

    async def complete(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise MCPError(INVALID_PARAMS, "Invalid params: ref is required")
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            target = await self._resolve_name(caller, "prompts", ref["name"])
            if target is None:
                raise MCPError(INVALID_PARAMS, f"Unknown prompt: {ref['name']!r}")
            server, name = target
            forwarded = {**params, "ref": {**ref, "name": name}}
            candidates = [server]
        elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            forwarded = params
            candidates = (await self._resolve_uri(caller, ref["uri"]))[:1]
        else:
            raise MCPError(INVALID_PARAMS, "Invalid params: ref must be a ref/prompt or a ref/resource")
        for server in candidates:
            try:
                return await self._forward(caller, server, "completion/complete", forwarded, None, None)
            except UpstreamFailure as exc:
                raise MCPError(
                    exc.code, f'server "{server}" is unavailable: {exc}', {"server": server}
                ) from None
            except MCPError as exc:
                if exc.code != METHOD_NOT_FOUND:
                    raise
        return {"completion": {"values": [], "hasMore": False}}

    async def subscribe(self, caller: Caller, uri: str, session: str | None, *, on: bool) -> dict[str, Any]:
        method = "resources/subscribe" if on else "resources/unsubscribe"
        live = self.sessions.get(session) if session else None
        if live is not None:
            (live.subscriptions.add if on else live.subscriptions.discard)(uri)
        for server in (await self._resolve_uri(caller, uri))[:1]:
            try:
                await self._forward(caller, server, method, {"uri": uri}, None, session)
            except UpstreamFailure as exc:
                raise MCPError(
                    exc.code, f'server "{server}" is unavailable: {exc}', {"server": server}
                ) from None
            except MCPError as exc:
                if exc.code != METHOD_NOT_FOUND:
                    raise
        return {}

    # ---- notifications outside requests -------------------------------------------------------------

    def remember(self, session: LiveSession) -> None:
        self.sessions[session.key] = session
        now = time.monotonic()
        for key in [k for k, s in self.sessions.items() if now - s.seen > self._session_idle]:
            del self.sessions[key]

    def forget(self, key: str) -> None:
        self.sessions.pop(key, None)

    async def _on_server_event(self, server: str, message: Message) -> None:
        method = message.get("method")
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        if not isinstance(method, str):
            return
        changed = [name for name, kind in KINDS.items() if kind.changed == method]
        for name in changed:
            self.discovery.invalidate((server, name))
        targets: list[LiveSession] = []
        for live in list(self.sessions.values()):
            try:
                _, servers = await self.servers(live.caller)
            except Exception:  # the token went away: this session hears nothing more
                continue
            if server not in servers:
                continue
            if method == "notifications/resources/updated":
                if params is None or params.get("uri") not in live.subscriptions:
                    continue
            elif not changed and method != "notifications/message":
                continue
            targets.append(live)
        for live in targets:
            try:
                await live.send(method, params)
            except Exception:  # the session is gone; forget it
                logger.debug("session %s no longer takes notifications", live.key[:8])
                self.forget(live.key)
