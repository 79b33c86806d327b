"""The embedded project endpoint: mcplocal's router linked into mcpd (DESIGN §1, "no HTTP hop").

`EmbeddedPlane` is the in-process adapter of mcplocal's control-plane port: introspection is the
same McpToken check the API uses, the project comes straight from the database, upstreams are the
supervisor's running instances, and AuditEvents are written by a batching queue. `Gateway` holds the
pieces and serves `/projects/{project}/mcp` on mcpd's own port.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core import proxymodels, tokens
from mcpctl.core.namespacing import PrefixMode
from mcpctl.core.proxymodels import UNRESOLVED, Stage
from mcpctl.mcpd.auth import authenticate_mcptoken
from mcpctl.mcpd.lastuse import record_token_use
from mcpctl.mcpd.link import LinkHub, LinkLimits
from mcpctl.mcpd.supervisor.connection import UpstreamError
from mcpctl.mcpd.supervisor.modern import ModernChannels, caller_version
from mcpctl.mcpd.supervisor.supervisor import Supervisor
from mcpctl.mcpd.supervisor.tool_filter import filter_tools, tool_allowed
from mcpctl.mcplocal.audit import AuditQueue
from mcpctl.mcplocal.endpoint import Endpoint
from mcpctl.mcplocal.http import ProjectMcpApp, TokenGate, loopback_hosts, loopback_origins
from mcpctl.mcplocal.input_rounds import InputRounds
from mcpctl.mcplocal.invalidation import InvalidationBus
from mcpctl.mcplocal.ports import (
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
from mcpctl.mcplocal.proxy.services import surface_for
from mcpctl.mcplocal.remote import RemotePlane, RemoteUpstream
from mcpctl.mcplocal.router import Router, without_envelope
from mcpctl.mcplocal.session_store import session_store_for
from mcpctl.mcplocal.settings import GatewaySettings
from mcpctl.mcplocal.spool import AuditSpool
from mcpctl.storage import tables
from mcpctl.storage.database import Database

logger = logging.getLogger(__name__)


async def resolve_stages(session: AsyncSession, model: str) -> tuple[Stage, ...] | None:
    """A model's stages: a built-in's, else the stored model's; None when it does not exist. (Here,
    not with the ProxyModel kind's handler: that imports the REST API's schemas.)"""
    if proxymodels.is_built_in(model):
        return proxymodels.BUILT_INS[model]
    row = (
        await session.execute(sa.select(tables.ProxyModel).where(tables.ProxyModel.name == model))
    ).scalar()
    if row is None:
        return None
    return tuple(Stage(str(s["type"]), dict(s.get("config") or {})) for s in row.stages)


async def project_view(session: AsyncSession, name: str) -> ProjectView | None:
    """What a project endpoint serves: the project's servers in order, how names are exposed, its
    proxy model resolved to stages, and its prompts (highest priority first, then by name)."""
    project = (await session.execute(sa.select(tables.Project).where(tables.Project.name == name))).scalar()
    if project is None:
        return None
    mode: PrefixMode = "never" if project.tool_prefix_mode == "never" else "always"
    stages = await resolve_stages(session, project.proxy_model)
    if stages is None:  # refused at configuration time; never silently served as something else
        logger.error("project %s names proxy model %r, which does not exist", name, project.proxy_model)
        stages = (Stage(UNRESOLVED),)  # every call fails until the project names a model that exists
    prompts = (
        await session.execute(
            sa.select(tables.Prompt)
            .where(tables.Prompt.project_id == project.id)
            .order_by(tables.Prompt.priority.desc(), tables.Prompt.name)
        )
    ).scalars()
    return ProjectView(
        name=project.name,
        servers=tuple(link.server.name for link in project.server_links),
        prefix_mode=mode,
        separator=project.tool_name_separator or "__",
        proxy_model=project.proxy_model,
        stages=stages,
        prompts=tuple(
            ProjectPrompt(p.name, p.text, p.priority, tuple(p.tags), p.description) for p in prompts
        ),
    )


class EmbeddedUpstream:
    """A server of the project as its supervised instances reach it.

    A 2026-07-28 caller's request to a `transport: http` server that speaks 2026-07-28 goes as that
    caller's own request, envelope kept (supervisor/modern.py): the upstream sees the caller's
    capabilities and may answer `input_required`, which passes back untouched. Everything else goes
    down the replica's shared 2025-11-25 connection without the envelope.

    A server another mcpd replica supervises (it holds the lease) is reached through that replica's
    data-plane link with the caller's McpToken (`forward`)."""

    def __init__(
        self,
        supervisor: Supervisor | None,
        name: str,
        modern: ModernChannels,
        forward: Callable[[], Awaitable[RemoteUpstream | None]] | None = None,
    ):
        self.supervisor, self.name, self.modern, self.forward = supervisor, name, modern, forward

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None,
        notify: Notify | None,
        relay: Relay | None = None,
    ) -> Message:
        runtime = self.supervisor.runtime(self.name) if self.supervisor is not None else None
        if runtime is None:
            remote = await self.forward() if self.forward is not None else None
            if remote is not None:
                return await remote.request(method, params, timeout=timeout, notify=notify, relay=relay)
            raise UpstreamFailure(self.name, f'server "{self.name}" is not running')
        if method == "tools/call" and not tool_allowed(runtime, str((params or {}).get("name", ""))):
            tool = (params or {}).get("name")
            return {"error": {"code": -32602, "message": f"Unknown tool: {tool!r}"}}
        config = runtime.config
        try:
            replica = await runtime.pick(config.init_seconds)
            version = caller_version(params)
            channel = await self.modern.channel(config) if version is not None else None
            if (
                params is not None
                and version is not None
                and channel is not None
                and await channel.supports(version, replica.name, replica.started_at, config.init_seconds)
            ):
                answer = await channel.request(
                    method, params, timeout=timeout or config.call_seconds, notify=notify
                )
            else:
                connection = replica.connection
                if connection is None:
                    raise UpstreamFailure(self.name, runtime.unavailable_reason())
                answer = await connection.request(
                    method,
                    _handshake_era(params) if params is not None else None,
                    timeout=timeout or config.call_seconds,
                    notify=notify,
                    relay=relay,
                )
        except UpstreamError as exc:
            raise UpstreamFailure(self.name, str(exc), exc.code) from None
        return filter_tools(runtime, answer) if method == "tools/list" else answer


def _handshake_era(params: dict[str, Any]) -> dict[str, Any]:
    """A caller's params as a 2025-11-25 session takes them: without the 2026-07-28 envelope and
    without a retry's `inputResponses`/`requestState` (mcplocal answers those rounds itself)."""
    params = without_envelope(params)
    if "inputResponses" in params or "requestState" in params:
        params = {k: v for k, v in params.items() if k not in _ROUND_PARAMS}
    return params


_ROUND_PARAMS = ("inputResponses", "requestState")


class EmbeddedPlane:
    views_per_token = False  # a project's view comes from the database, the same for every token

    def __init__(self, db: Database, supervisor: Supervisor | None):
        self.db, self.supervisor = db, supervisor
        # what upstreams say outside requests, on mcpd's connections (the supervisor's listeners,
        # which also hear list_changed when a server's instances come up or go down) and on 2026
        # exchanges, reaches the same watchers
        self._watchers: list[ServerEvent] = []
        self.modern = ModernChannels(heard=self._heard)
        if supervisor is not None:
            supervisor.listeners.append(self._heard)
        self._remotes: dict[str, RemotePlane] = {}  # other mcpd replicas, by URL (created lazily)

    async def _heard(self, server: str, message: Message) -> None:
        for watcher in list(self._watchers):
            await watcher(server, message)

    async def introspect(self, bearer: str, *, touch: bool = True) -> Introspection:
        """`touch` False: a check that is no use of the token (mcpd's own re-check of a link's held
        tokens) leaves its lastUsedAt alone."""
        if not tokens.looks_like_token(bearer):
            return Introspection(False, "malformed")
        try:
            async with self.db.read() as session:
                result = await authenticate_mcptoken(session, bearer)
            if touch and result.touch and result.principal.token_id is not None:
                await record_token_use(self.db, result.principal.token_id)
        except Exception as exc:  # the database is down: say so, do not remember a refusal
            raise ControlPlaneUnavailable(f"database: {type(exc).__name__}") from exc
        if result.principal.kind != "token":
            return Introspection(False, result.error or "unknown")
        return Introspection(True, principal=result.principal, expires_at=result.expires_at)

    async def project(self, caller: Caller) -> ProjectView:
        async with self.db.read() as session:
            view = await project_view(session, caller.project)
        return view or ProjectView(caller.project, ())

    def upstream(self, caller: Caller | None, server: str, session_id: str | None) -> EmbeddedUpstream:
        leases = self.supervisor.leases if self.supervisor is not None else None
        if leases is None or caller is None:
            return EmbeddedUpstream(self.supervisor, server, self.modern)

        async def forward() -> RemoteUpstream | None:
            """The server through the replica holding its lease, when that is another replica."""
            if leases.holds(server):
                return None  # held here, not started yet: "not running" is the truth
            try:
                holder = await leases.holder(server)
            except Exception as exc:  # the database is down
                reason = f"cannot tell which mcpd runs it: {type(exc).__name__}"
                raise UpstreamFailure(server, reason) from exc
            if holder is None or holder.replica == leases.replica_id:
                return None
            return self._remote(holder.url).upstream(caller, server, session_id)

        return EmbeddedUpstream(self.supervisor, server, self.modern, forward)

    def _remote(self, url: str) -> RemotePlane:
        remote = self._remotes.get(url)
        if remote is None:
            remote = self._remotes[url] = RemotePlane(url)
            remote.watch(self._heard_from(url))
        return remote

    def _heard_from(self, url: str) -> ServerEvent:
        """Notifications another replica hears from a server it supervises, for this replica's
        sessions: only while that replica is the holder this one knows of (never echoed back)."""

        async def heard(server: str, message: Message) -> None:
            leases = self.supervisor.leases if self.supervisor is not None else None
            if leases is None or leases.holds(server):
                return
            holder = leases.known_holder(server)
            if holder is None or holder.url != url:
                return
            await self._heard(server, message)

        return heard

    async def close(self) -> None:
        """Close the links to other replicas."""
        remotes, self._remotes = list(self._remotes.values()), {}
        for remote in remotes:
            with contextlib.suppress(Exception):
                await remote.close()

    healthy = True  # in-process: the database's own failures surface per request

    async def ready(self) -> str | None:
        return None

    def watch(self, callback: ServerEvent) -> None:
        self._watchers.append(callback)

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        """Store a batch in one statement (an executemany); an event already stored (replayed from
        the spool) is skipped by its id (ON CONFLICT DO NOTHING: no lookup first). A Core insert
        into the table, not the ORM's bulk insert: the ORM's per-row bookkeeping was a sixth of the
        insert's CPU (8 of 47 µs per row, measured on SQLite)."""
        if not records:
            return
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        async with self.db.write() as session:
            statement = insert(_AUDIT_TABLE).on_conflict_do_nothing(index_elements=["id"])
            await session.execute(statement, [audit_row(r) for r in records])


_AUDIT_TABLE = cast(sa.Table, tables.AuditEvent.__table__)  # columns named as the mapped attributes


def audit_row(record: AuditRecord) -> dict[str, Any]:
    """An AuditEvent row's values, by attribute name."""
    principal = record.principal
    return {
        "id": record.event_id,
        "time": record.time,
        "kind": record.kind,
        "user": principal.owner if principal.kind == "token" else principal.email,
        "token_name": principal.token_name,
        "token_sha": principal.token_sha,
        "project": record.project,
        "server": record.server,
        "target": record.target[:500],
        "outcome": record.outcome,
        "duration_ms": record.duration_ms,
        "session_id": (record.session_id or None) and record.session_id[:128],
        "request_id": record.request_id,
        "client_addr": record.client_addr,
    }


class Gateway:
    """The project endpoint inside mcpd: router, token gate, SDK session manager, audit queue."""

    def __init__(
        self,
        db: Database,
        supervisor: Supervisor | None,
        settings: GatewaySettings,
        public_url: str,
        spool_dir: Path | None = None,
        cache_dir: Path | None = None,
        link_limits: LinkLimits | None = None,
    ):
        """`spool_dir`: where answered calls' AuditEvents are spooled until stored (mcpd: under its
        data dir); `MCPLOCAL_AUDIT_SPOOL_DIR` wins; neither: no spool (in-process tests).
        `cache_dir`: the pipeline cache when `MCPLOCAL_CACHE_DIR` is not set (mcpd: under its data dir)."""
        self.settings = settings
        self.plane = EmbeddedPlane(db, supervisor)
        directory = settings.audit_spool_dir or spool_dir
        self.audit = AuditQueue(
            self.plane.audit,
            flush_seconds=settings.audit_flush_ms / 1000,
            max_queue=settings.audit_queue_max,
            spool=AuditSpool(directory) if directory is not None else None,
        )
        self.router = Router(self.plane, settings.router_settings(), self.audit.put)
        # split-mode mcplocal's calls run through this same plane (the data-plane link)
        self.endpoint = Endpoint(
            self.router,
            rounds=InputRounds(settings.input_rounds_settings()),
            surface=surface_for(self.router, settings, default_cache_dir=cache_dir),
        )
        self.gate = TokenGate(
            self.plane,
            settings.token_positive_ttl_ms / 1000,
            settings.token_negative_ttl_ms / 1000,
            settings.token_cache_entries,
        )
        public = urlsplit(public_url)
        extra_hosts = [public.netloc] if public.netloc else []
        extra_origins = [f"{public.scheme}://{public.netloc}"] if public.netloc else []
        self.app = ProjectMcpApp(
            self.endpoint,
            self.gate,
            allowed_hosts=loopback_hosts([*extra_hosts, *settings.allowed_hosts]),
            allowed_origins=loopback_origins([*extra_origins, *settings.allowed_origins]),
            max_body_bytes=settings.max_body_bytes,
            session_idle_seconds=settings.session_idle_seconds,
            session_limits=settings.session_limits(),
            session_store=session_store_for(settings),
        )
        # MCPLOCAL_AUDIT_SPOOL_SYNC: answers wait for their audit events' fdatasync (group commit)
        self.durable = self.audit.durable if settings.audit_spool_sync and directory is not None else None
        self.app.exchanges.durable = self.durable
        self.links = LinkHub(
            self.plane,
            self.audit.put,
            self.durable,
            replace(link_limits or LinkLimits(), token_seconds=settings.token_positive_ttl_ms / 1000),
            holds=self.router,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.audit.start()
        try:
            async with self.app.sessions.run():
                yield
        finally:
            await self.links.close_all()
            await self.endpoint.close()
            await self.audit.close()
            await self.plane.modern.aclose()
            await self.plane.close()

    async def offered_names(self, server: str) -> dict[str, list[str]] | None:
        """The tool and prompt names a server offers now, if it is running (None otherwise)."""
        supervisor = self.plane.supervisor
        runtime = supervisor.runtime(server) if supervisor is not None else None
        if runtime is None or not any(replica.ready for replica in runtime.replicas):
            return None
        found: dict[str, list[str]] = {}
        for kind in ("tools", "prompts"):
            items = await self.router.lists.discover(None, server, kind)
            if items is None:
                return None
            found[kind] = [str(item["name"]) for item in items]
        return found

    # Cross-replica invalidation (DESIGN §11; mcpd/invalidation.py sets it when Redis is configured):
    # what this mcpd changes is published for the other replicas and their mcplocals.
    bus: InvalidationBus | None = None

    def tokens_ended(self, token_shas: Sequence[str], *, publish: bool = True) -> None:
        """Tokens were revoked or deleted (in this mcpd, or in another replica when `publish` is
        False): the endpoint refuses them from now on and ends their sessions and streams, and so
        does every linked mcplocal."""
        ended = list(dict.fromkeys(token_shas))  # once each (a deleted token may be listed twice)
        for sha in ended:
            self.gate.token_ended(sha)
        self.links.tokens_ended(ended)
        if publish and self.bus is not None:
            self.bus.tokens_ended(ended)

    def configuration_changed(self, *, publish: bool = True) -> None:
        """Projects, servers, prompts, proxy models, bindings or users changed (in this mcpd, or in
        another replica when `publish` is False): forget cached views, and tell the open sessions and
        listen streams of every project whose view changed."""
        self.router.invalidate()
        self.gate.invalidate()
        self.links.configuration_changed()
        self.router.spawn(self.router.projects_changed())
        if publish and self.bus is not None:
            self.bus.changed()
