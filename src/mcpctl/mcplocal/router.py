"""The project router: one MCP endpoint over a project's servers (DESIGN §5).

Discovery (`discovery.py`): each server's lists, cached per server; a server that cannot be
reached costs one discovery timeout for all its list kinds; lists carry what the healthy servers
have.

Naming (`core.namespacing`): `always` exposes `<server><sep><name>` for tools and prompts; `never`
exposes upstream names; tool names are made legal (`Naming.assign`). A collision found at run time
hides the later item and is logged (configuration refuses `never` collisions up front). Resources
keep their URIs (the first server in project order wins).

Lists follow the project: an upstream's list_changed (the supervisor sends them too when a server's
instances come up or go down) and `projects_changed` (the configuration changed) drop what is cached
and reach the project's audience (`audience.py`).

Pages: the gateway's own cursor (`core.cursors`) names a server and an offset into its cached list,
plus a fingerprint of the caller's server list, so a stale cursor is refused rather than misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND, SERVER_INFO_META_KEY

from mcpctl.core import cursors
from mcpctl.core.errors import InvalidError
from mcpctl.core.namespacing import MAX_TOOL_NAME, Naming, is_legal
from mcpctl.core.ttlcache import TtlCache
from mcpctl.mcplocal.audience import (
    LIST_CHANGED,
    LOG_MESSAGE,
    RESOURCE_UPDATED,
    Audience,
    LiveSession,
    Subscriptions,
)
from mcpctl.mcplocal.discovery import KINDS, Discovery, ListKind
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


@dataclass(frozen=True)
class RouterSettings:
    discovery_positive_seconds: float = 60.0
    discovery_negative_seconds: float = 10.0
    discovery_timeout_seconds: float = 5.0
    project_ttl_seconds: float = 5.0
    page_size: int = 500


__all__ = ["LiveSession", "Router", "RouterSettings", "without_envelope"]


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
        self.lists = Discovery(
            plane,
            timeout=settings.discovery_timeout_seconds,
            positive=settings.discovery_positive_seconds,
            negative=settings.discovery_negative_seconds,
        )
        # Cached per what the plane reads them with (`ControlPlane.views_per_token`): per project when
        # the view is the project's (mcpd embedded: 10,000 tokens share one entry), per token when it
        # is read with the caller's token (split mode: the read is also that token's re-check by mcpd).
        self.projects: TtlCache[tuple[str, str | None], ProjectView] = TtlCache(
            settings.project_ttl_seconds, 1.0
        )
        self.audience = Audience()
        self.subscriptions = Subscriptions()
        self._known: dict[str, tuple[str, ...]] = {}
        # per project: the view its audience was last told about, and a recent caller to re-read it
        self._announced: dict[str, ProjectView] = {}
        self._callers: dict[str, Caller] = {}
        self._changes = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        plane.watch(self._on_server_event)

    @property
    def sessions(self) -> dict[str, LiveSession]:
        return self.audience.sessions

    # ---- the project and its servers -----------------------------------------------------------

    async def project(self, caller: Caller) -> ProjectView:
        return await self.projects.get(self._view_key(caller), lambda: self.plane.project(caller))

    def _view_key(self, caller: Caller) -> tuple[str, str | None]:
        return caller.project, caller.token_sha if self.plane.views_per_token else None

    async def servers(self, caller: Caller) -> tuple[ProjectView, tuple[str, ...]]:
        view = await self.project(caller)
        self._known[view.name] = view.servers
        self._callers[view.name] = caller
        self._announced.setdefault(view.name, view)
        return view, tuple(s for s in view.servers if caller.may_use(s))

    def known_servers(self, project: str) -> tuple[str, ...]:
        """The servers of a project as last seen (for routing notifications)."""
        return self._known.get(project, ())

    def invalidate(self, server: str | None = None) -> None:
        """Forget discovery (one server's, or all) and project views, silently (`projects_changed`
        and server events also tell the sessions)."""
        self.lists.invalidate(server)
        self.projects.invalidate()

    async def projects_changed(self, projects: Sequence[str] | None = None) -> None:
        """The configuration of these projects (None: of any) changed: servers added or removed,
        naming, bindings. Those with an audience are read again and, where what they serve changed,
        their open sessions and listen streams hear tools, prompts and resources list_changed.
        Embedded: mcpd calls it (through `Gateway.configuration_changed`) after each change it
        commits; split mode: the adapter, when mcpd says so."""
        self.projects.invalidate()
        async with self._changes:
            heard = self.audience.projects()
            names = [p for p in (self._announced if projects is None else projects) if p in heard]
            for name in names:
                view = await self._reread(name)
                if view is None or view == self._announced.get(name):
                    continue
                self._known[name] = view.servers
                self._announced[name] = view
                logger.info("project %s now serves %s", name, ", ".join(view.servers) or "no servers")
                for method in LIST_CHANGED:
                    await self._tell(name, method, None)

    async def _reread(self, project: str) -> ProjectView | None:
        """The project's view now, read with one of its callers (its sessions', else the last one)."""
        callers = [live.caller for live in self.sessions.values() if live.project == project]
        last = self._callers.get(project)
        for caller in [*callers, *([last] if last is not None else [])]:
            try:
                return await self.project(caller)
            except Exception as exc:  # e.g. that token was revoked: try another
                logger.debug("project %s cannot be read with a caller's token: %s", project, exc)
        return None

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run `work` on its own (kept referenced until it ends; failures logged)."""

        async def run() -> None:
            try:
                await work
            except MCPError as exc:  # an upstream's answer (e.g. it is down): worth a line
                logger.info("router background work: %s", exc.message)
            except Exception:  # boundary: background work is logged, never raised into a caller
                logger.exception("router background work failed")

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # shutting down, outside the loop: nothing is left to tell
            if isinstance(work, Coroutine):
                work.close()
            return
        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _exposed(
        naming: Naming,
        kind: ListKind,
        servers: Sequence[str],
        catalog: dict[str, tuple[dict[str, Any], ...] | None],
    ) -> list[list[dict[str, Any]]]:
        """Each server's items as the project shows them (exposed names), in project order."""
        entries = [(server, item) for server in servers for item in catalog.get(server) or ()]
        names = naming.assign(
            [(server, item[kind.key]) for server, item in entries], prefixed=kind.prefixed, legal=kind.legal
        )
        out: dict[str, list[dict[str, Any]]] = {server: [] for server in servers}
        for (server, item), exposed in zip(entries, names, strict=True):
            key = item[kind.key]
            if exposed is None:
                logger.warning(
                    "%s %r of server %s is hidden: an earlier one has the same name", kind.field, key, server
                )
                continue
            out[server].append({**item, kind.key: exposed} if exposed != key else item)
        return [out[server] for server in servers]

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
        catalog = await self.lists.catalog(caller, kind_name, servers)
        shown = self._exposed(naming, kind, servers, catalog)
        page: list[dict[str, Any]] = []
        index = position.server
        next_cursor: str | None = None
        while index < len(servers):
            exposed = shown[index]
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

    async def all_items(self, caller: Caller, kind_name: str) -> list[dict[str, Any]]:
        """Every item of a kind the caller is offered, all pages."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.list_items(caller, kind_name, cursor)
            items.extend(page[KINDS[kind_name].field])
            cursor = page.get("nextCursor")
            if not cursor:
                return items

    async def warm_tools(self, caller: Caller, exposed: str | None = None) -> None:
        """Make the caller's project view and tool lists cached (see `cached_tool_schema`): in
        `always` mode only those of the servers `exposed` can name, so a call to one server never
        waits for another's discovery."""
        view, servers = await self.servers(caller)
        if exposed is not None and view.prefix_mode == "always":
            naming = Naming(view.prefix_mode, view.separator, servers)
            servers = tuple(server for server, _ in naming.candidates(exposed))
        await self.lists.catalog(caller, "tools", servers)

    def cached_tool_schema(self, caller: Caller, exposed: str) -> dict[str, Any] | None:
        """An exposed tool's inputSchema from what is cached now, without I/O: None when the tool is
        not offered to this caller or its server's listing is not at hand."""
        view = self.projects.peek(self._view_key(caller))
        if view is None:
            return None
        servers = tuple(s for s in view.servers if caller.may_use(s))
        naming = Naming(view.prefix_mode, view.separator, servers)
        scope = self._scope(naming, servers, exposed)
        catalog = {server: self.lists.peek(server, "tools") for server in scope}
        found = self._lookup(naming, KINDS["tools"], scope, catalog, exposed)
        if found is None:
            return None
        for item in catalog[found[0]] or ():
            if item["name"] == found[1]:
                schema = item.get("inputSchema")
                return schema if isinstance(schema, dict) else None
        return None

    # ---- routing -------------------------------------------------------------------------------

    @staticmethod
    def _scope(naming: Naming, servers: tuple[str, ...], exposed: str) -> tuple[str, ...]:
        """The servers whose lists can hold an exposed name: in `always` mode those whose prefix it
        has (a name shortened with a hash may have lost it: then all), in `never` mode all."""
        if naming.mode != "always":
            return servers
        prefixed = tuple(dict.fromkeys(server for server, _ in naming.candidates(exposed)))
        return prefixed or (servers if len(exposed) == MAX_TOOL_NAME else ())

    @staticmethod
    def _lookup(
        naming: Naming,
        kind: ListKind,
        scope: Sequence[str],
        catalog: dict[str, tuple[dict[str, Any], ...] | None],
        exposed: str,
    ) -> tuple[str, str] | None:
        """(server, upstream name) the listing shows `exposed` for, from the servers in `scope`."""
        if not kind.legal or is_legal(exposed):
            # a name legal as it is is never taken by a changed one: the first server offering it
            candidates = (
                naming.candidates(exposed) if naming.mode == "always" else [(s, exposed) for s in scope]
            )
            for server, name in candidates:
                if any(item[kind.key] == name for item in catalog.get(server) or ()):
                    return server, name
        if not kind.legal:
            return None
        entries = [(server, item[kind.key]) for server in scope for item in catalog.get(server) or ()]
        names = naming.assign(entries, prefixed=kind.prefixed, legal=True)
        return next((entry for entry, name in zip(entries, names, strict=True) if name == exposed), None)

    async def _resolve_name(self, caller: Caller, kind_name: str, exposed: str) -> tuple[str, str] | None:
        view, servers = await self.servers(caller)
        naming = Naming(view.prefix_mode, view.separator, servers)
        scope = self._scope(naming, servers, exposed)
        catalog = await self.lists.catalog(caller, kind_name, scope)
        found = self._lookup(naming, KINDS[kind_name], scope, catalog, exposed)
        if found is not None:
            return found
        return naming.resolve(exposed)  # None in never mode; a server may offer names it does not list

    async def _resolve_uri(self, caller: Caller, uri: str) -> tuple[list[str], int]:
        """The servers that may hold `uri`, best first, and how many of them are known to: one that
        lists it, else those whose templates match; then every other server (a server may serve
        URIs it does not list), only as a fallback."""
        _, servers = await self.servers(caller)
        resources = await self.lists.catalog(caller, "resources", servers)
        for server in servers:
            if any(item["uri"] == uri for item in resources[server] or ()):
                return [server], 1
        templates = await self.lists.catalog(caller, "resourceTemplates", servers)
        matching = [
            s
            for s in servers
            if any(_template_regex(t["uriTemplate"]).match(uri) for t in templates[s] or ())
        ]
        return matching + [s for s in servers if s not in matching], len(matching)

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
    def audited(
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
    ) -> tuple[str | None, dict[str, Any]]:
        """(the server that answered, its result): the tool the exposed name stands for, called."""
        name = params.get("name")
        with self.audited("tool_call", caller, name, session, request_id, client_addr) as audited:
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
                return server, {
                    "content": [{"type": "text", "text": f'server "{server}" is unavailable: {exc}'}],
                    "isError": True,
                }
            audited.outcome = "error" if result.get("isError") else "ok"
            return server, result

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
        with self.audited("prompt_get", caller, name, session, request_id, client_addr) as audited:
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
    ) -> tuple[str, dict[str, Any]]:
        """(the server that answered, its result): the first candidate server that holds `uri`."""
        uri = params.get("uri")
        with self.audited("resource_read", caller, uri, session, request_id, client_addr) as audited:
            if not isinstance(uri, str):
                raise MCPError(INVALID_PARAMS, "Invalid params: uri is required")
            outage: MCPError | None = None  # of a server known to hold the URI: it wins over not-found
            candidates, known = await self._resolve_uri(caller, uri)
            for rank, server in enumerate(candidates):
                audited.server = server
                try:
                    result = await self._forward(
                        caller, server, "resources/read", params, notify, session, relay
                    )
                except UpstreamFailure as exc:
                    if rank < known and outage is None:
                        outage = MCPError(
                            exc.code, f'server "{server}" is unavailable: {exc}', {"server": server}
                        )
                    continue
                except MCPError as exc:
                    if exc.code in (RESOURCE_NOT_FOUND, INVALID_PARAMS, METHOD_NOT_FOUND):
                        continue
                    raise
                audited.outcome = "ok"
                return server, result
            audited.server = None
            raise outage or MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})

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
            candidates = (await self._resolve_uri(caller, ref["uri"]))[0][:1]
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

    async def subscribe(self, caller: Caller, uri: str, holder: str | None, *, on: bool) -> dict[str, Any]:
        """resources/subscribe (`on`) or unsubscribe for a holder: a legacy session's key or a
        listen stream's. Counted per (server, URI): the upstream hears subscribe from the first
        holder and unsubscribe when the last one leaves (`release` when a holder ends)."""
        if holder is None:  # no session to deliver to: a subscribe is passed on, an unsubscribe
            if on:  # would cut off holders it knows nothing of, so it is not
                for server in (await self._resolve_uri(caller, uri))[0][:1]:
                    await self._upstream_subscription(caller, server, uri, on=True)
            return {}
        live = self.sessions.get(holder)
        if not on:
            if live is not None:
                live.subscriptions.discard(uri)
            held = self.subscriptions.server_of(holder, uri)
            if held is not None:
                await self.hold(caller, held, uri, holder, on=False)
            return {}
        for server in (await self._resolve_uri(caller, uri))[0][:1]:
            if live is not None:
                live.subscriptions.add(uri)
            try:
                await self.hold(caller, server, uri, holder, on=True)
            except BaseException:
                if live is not None:
                    live.subscriptions.discard(uri)
                raise
        return {}

    async def hold(self, caller: Caller, server: str, uri: str, holder: str, *, on: bool) -> None:
        """`holder` subscribes to (`on`) or leaves `uri` of `server`, counted: the upstream hears
        subscribe from the first holder and unsubscribe when the last one leaves. Also what mcpd's
        data-plane link uses for split-mode mcplocals (holder: the link and token), so their holds and
        the embedded sessions' share one count."""
        if not on:
            if self.subscriptions.remove(holder, server, uri):
                await self._upstream_subscription(caller, server, uri, on=False)
            return
        if self.subscriptions.holds(holder, server, uri):
            return
        if self.subscriptions.add(holder, server, uri, caller):
            try:
                await self._upstream_subscription(caller, server, uri, on=True)
            except BaseException:
                self.subscriptions.remove(holder, server, uri)
                raise

    async def _upstream_subscription(self, caller: Caller, server: str, uri: str, *, on: bool) -> None:
        method = "resources/subscribe" if on else "resources/unsubscribe"
        try:
            await self._forward(caller, server, method, {"uri": uri}, None, None)
        except UpstreamFailure as exc:
            raise MCPError(exc.code, f'server "{server}" is unavailable: {exc}', {"server": server}) from None
        except MCPError as exc:
            if exc.code != METHOD_NOT_FOUND:
                raise

    def release(self, holder: str) -> None:
        """A holder (session or listen stream) ended: unsubscribe upstream what only it held."""
        for server, uri, caller in self.subscriptions.drop(holder):
            self.spawn(self._upstream_subscription(caller, server, uri, on=False))

    # ---- notifications outside requests -------------------------------------------------------------

    def remember(self, session: LiveSession) -> None:
        self.audience.remember(session)
        for key in self.audience.idle():
            self.forget(key)

    def forget(self, key: str) -> None:
        self.audience.forget(key)
        self.release(key)

    def set_level(self, session: str | None, level: str) -> None:
        """logging/setLevel of a legacy session: log lines below it are not passed to it."""
        live = self.sessions.get(session) if session else None
        if live is not None:
            live.level = level

    async def _tell(self, project: str, method: str, params: dict[str, Any] | None, **only: Any) -> None:
        for key in await self.audience.tell(project, method, params, **only):
            self.forget(key)

    async def _on_server_event(self, server: str, message: Message) -> None:
        """An upstream's notification outside any request (the plane's `watch`): list_changed drops
        that server's cached lists of that kind (and its remembered failure) and reaches every
        project that has the server; resources/updated reaches the URI's subscribers; log lines
        reach legacy sessions at their level."""
        method = message.get("method")
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        if not isinstance(method, str):
            return
        changed = [name for name, kind in KINDS.items() if kind.changed == method]
        for name in changed:
            self.lists.invalidate(server, name)
        if "resources" in changed:  # e.g. the instance came back: it has forgotten subscriptions
            for held, holder_caller in self.subscriptions.held(server):
                self.spawn(self._upstream_subscription(holder_caller, server, held, on=True))
        if not changed and method not in (RESOURCE_UPDATED, LOG_MESSAGE):
            return
        only: dict[str, Any] = {"server": server}
        if method == RESOURCE_UPDATED:
            updated = params.get("uri") if params else None
            if not isinstance(updated, str):
                return
            only["subscribed"] = lambda key: self.subscriptions.holds(key, server, updated)
        for project, servers in list(self._known.items()):
            if server in servers:
                await self._tell(project, method, params, **only)
