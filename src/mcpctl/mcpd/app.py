"""The composition root: create_app(settings) builds mcpd; the lifespan opens and closes resources."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Router
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

import mcpctl
from mcpctl.core.crypto import Passwords, SecretCipher
from mcpctl.core.errors import McpctlError
from mcpctl.mcpd import audit, datadir, errors, invalidation
from mcpctl.mcpd.bootstrap import bootstrap_admin
from mcpctl.mcpd.hashing import HashingPool
from mcpctl.mcpd.login_throttle import LoginThrottle
from mcpctl.mcpd.middleware import AuthMiddleware, Metrics, RequestContextMiddleware
from mcpctl.mcpd.secretkey import load_secret_key
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.state import AppState
from mcpctl.mcpd.supervisor.metrics import InstanceCollector
from mcpctl.mcpd.supervisor.sessions import ProxySessions
from mcpctl.mcpd.supervisor.supervisor import Supervisor
from mcpctl.mcplocal import front, serving
from mcpctl.mcplocal.settings import GatewaySettings
from mcpctl.storage.database import Database

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mcpctl.mcpd.gateway import Gateway
    from mcpctl.mcpd.supervisor.prelaunch import Prelaunched

logger = logging.getLogger(__name__)


# How long startup waits for the supervised servers' processes to be spawned before its last steps
# (Supervisor.launched): a spawn takes milliseconds; an http upstream slow to connect is not awaited.
_LAUNCH_WAIT_SECONDS = 0.25


class _ProjectEndpoint:
    """`/projects/{project}/mcp`: the embedded gateway of this app (created by the lifespan)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState = scope["app"].state.mcpd
        assert state.gateway is not None
        await state.gateway.app(scope, receive, send)


class _ErrorShape:
    """What FastAPI's exception handlers do for the project endpoint: our errors and unexpected
    ones answered in the one error shape (when the response has not started)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            request_id = scope.get("state", {}).get("request_id")
            if isinstance(exc, McpctlError):
                await errors.error_response(exc, request_id)(scope, receive, send)
                return
            logger.exception("unhandled error")
            body = errors.error_body("internal", "internal server error", None, request_id)
            await JSONResponse(body, status_code=500)(scope, receive, send)


class Mcpd:
    """mcpd's ASGI app: the project endpoint dispatched ahead of the web framework (front.py: its
    middleware stack and router were a fifth of mcpd's CPU per call), the lifespan run here, and
    everything else served by the REST API's FastAPI app, which the first request that is not the
    project endpoint's builds (`api`): importing FastAPI and building the app and its routes is
    ~0.4-0.6 s of CPU that would otherwise stand between a restarted mcpd and its first served
    tools/call (cold start, docs/performance.md). The endpoint keeps what the framework gave it
    (request id, metrics, body limit, NUL check, the error shape); a root path goes the usual way
    (the route is registered in the API app too). Both share `state`. The API app gets no lifespan
    events: a router's `on_startup` or lifespan would not run (there is none; startup is here)."""

    def __init__(self, lifespan: Lifespan[Mcpd], project_endpoint: ASGIApp, api: Callable[[Mcpd], FastAPI]):
        self.state = State()
        self.router = Router(lifespan=lifespan)  # the ASGI lifespan protocol, as Starlette speaks it
        self.project_route = front.project_route(_ProjectEndpoint())
        self.project_endpoint = project_endpoint
        self._build_api = api
        self._api: FastAPI | None = None

    def api(self) -> FastAPI:
        """The REST API's app, built once (a synchronous step: no request sees half of it)."""
        if self._api is None:
            self._api = self._build_api(self)
            if gc.get_freeze_count():  # serving froze the startup heap (serving.settled): it joins
                gc.freeze()
        return self._api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if front.dispatched(scope, self, self.project_route):
            await self.project_endpoint(scope, receive, send)
        elif scope["type"] == "lifespan":
            scope["app"] = self
            await self.router(scope, receive, send)
        else:
            await self.api()(scope, receive, send)


def create_app(
    settings: Settings,
    gateway_settings: GatewaySettings | None = None,
    prelaunched: Prelaunched | None = None,
) -> Mcpd:
    """Build an mcpd application. Nothing is opened until the lifespan starts; the REST API is
    built by the first request that needs it (Mcpd.api, _rest_api). `prelaunched`:
    the stdio instances `mcpd` spawned ahead from the launch plan, for the supervisor to take
    (supervisor/prelaunch.py)."""
    metrics = Metrics()
    gateway_config = gateway_settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: Mcpd) -> AsyncIterator[None]:
        db: Database | None = None
        collector: InstanceCollector | None = None
        stack = AsyncExitStack()
        try:
            datadir.prepare(settings.data_dir, settings.resolved_database_url)
            db = Database(settings.resolved_database_url)
            if await db.migrate():
                # what Alembic left (~5,000 objects) was made with the collector off (programs.py):
                # found now, on a first start or an upgrade only, not kept frozen for good
                gc.collect()
            datadir.secure_database_files(settings.resolved_database_url)
            cipher = SecretCipher(load_secret_key(settings))
            supervisor = Supervisor(db, cipher, settings, prelaunched)
            state = AppState(
                settings=settings,
                db=db,
                cipher=cipher,
                passwords=Passwords(
                    time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
                ),
                hashing=HashingPool(
                    concurrency=settings.password_hash_concurrency,
                    max_waiting=settings.password_hash_queue,
                    max_wait_seconds=settings.password_hash_wait_seconds,
                ),
                login_throttle=LoginThrottle(
                    per_address=settings.login_failures_per_address,
                    per_account=settings.login_failures_per_account,
                    window_seconds=settings.login_throttle_window_seconds,
                    max_keys=settings.login_throttle_max_entries,
                ),
                metrics=metrics,
                supervisor=supervisor,
            )
            app.state.mcpd = state
            if settings.supervise:
                # First: the supervised servers boot (on another core) while the rest of startup
                # runs, the project endpoint's imports included; it listens to them once it exists,
                # before anything is served.
                await supervisor.start()
                await supervisor.launched(_LAUNCH_WAIT_SECONDS)
            await bootstrap_admin(db, settings, state.passwords, public_url=settings.resolved_public_url)
            state.proxy_sessions = ProxySessions(settings.proxy_session_idle_seconds)
            collector = InstanceCollector(supervisor)
            metrics.registry.register(collector)
            state.gateway = _gateway(settings, gateway_config, db, supervisor)
            await stack.enter_async_context(state.gateway.running())
            # other replicas hear this one's revocations and changes, and this one theirs (Redis)
            await stack.enter_async_context(invalidation.running(state, gateway_config))
            logger.info("mcpd %s ready (database: %s)", mcpctl.__version__, db.dialect)
            with serving.settled():  # the collector and anyio's backend sniffing: serving.py
                yield
        finally:
            state_now: AppState | None = getattr(app.state, "mcpd", None)
            if state_now is not None and state_now.proxy_sessions is not None:
                state_now.proxy_sessions.closing.set()
            await stack.aclose()  # the project endpoint's sessions end; queued audit events are written
            if state_now is not None and state_now.supervisor is not None:
                # every child process group terminated and reaped, those spawned ahead included
                await state_now.supervisor.stop()
            if collector is not None:
                metrics.registry.unregister(collector)
            if state_now is not None:
                state_now.hashing.close()
            if db is not None:
                await db.dispose()

    project_endpoint = RequestContextMiddleware(
        _ErrorShape(_ProjectEndpoint()), metrics=metrics, max_body_bytes=settings.max_body_bytes
    )
    return Mcpd(lifespan, project_endpoint, lambda app: _rest_api(app, settings, metrics))


def _rest_api(app: Mcpd, settings: Settings, metrics: Metrics) -> FastAPI:
    """The REST API and the other routers (ops, the per-server proxy, the data-plane link), with
    their middleware and error handlers, sharing `app`'s state. Imported here, not at the top:
    FastAPI (~0.15 s of import), the routers and the API's schemas, and FastAPI building their
    routes (~0.3 s) are not needed to serve the project endpoint."""
    from fastapi import APIRouter, FastAPI

    from mcpctl.mcpd.kinds.handlers import HANDLERS
    from mcpctl.mcpd.routers import audit as audit_router
    from mcpctl.mcpd.routers import auth as auth_router
    from mcpctl.mcpd.routers import instances as instances_router
    from mcpctl.mcpd.routers import link as link_router
    from mcpctl.mcpd.routers import mcp_proxy, ops
    from mcpctl.mcpd.routers import mcptokens as mcptokens_router
    from mcpctl.mcpd.routers import projects as projects_router
    from mcpctl.mcpd.routers import prompts as prompts_router
    from mcpctl.mcpd.routers.resources import resource_router
    from mcpctl.mcpd.schemas import ErrorOut

    api = FastAPI(
        title="mcpd",
        version=mcpctl.__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        description="mcpctl control plane API. See docs/api.md.",
    )
    api.state = app.state
    # First, so a project endpoint request with a root path is not matched against every API route
    # before it; no API path starts with /projects.
    api.router.routes.insert(0, app.project_route)

    async def on_forbidden(request: Request, error: McpctlError) -> None:
        state: AppState | None = getattr(request.app.state, "mcpd", None)
        result = getattr(request.state, "auth", None)
        if state is None or result is None:
            return
        try:
            async with state.db.write() as session:
                audit.record(
                    session,
                    "rbac_denied",
                    outcome="denied",
                    **audit.principal_fields(result.principal),
                    target=f"{request.method} {request.url.path}"[:500],
                    request_id=getattr(request.state, "request_id", None),
                    client_addr=audit.client_addr(request),
                )
        except Exception:
            logger.exception("could not record an rbac_denied audit event")

    errors.install(api, on_forbidden=on_forbidden)
    _document_errors_as_400(api)
    api.add_middleware(AuthMiddleware)
    api.add_middleware(RequestContextMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)

    responses: dict[int | str, dict[str, object]] = {
        status: {"model": ErrorOut, "description": text}
        for status, text in (
            (400, "Invalid request"),
            (401, "Unauthenticated"),
            (403, "Forbidden"),
            (404, "Not found"),
            (409, "Conflict"),
            (413, "Payload too large"),
        )
    }
    rest = APIRouter(prefix="/api/v1", responses=responses)
    rest.include_router(auth_router.router)
    rest.include_router(audit_router.router)
    rest.include_router(mcptokens_router.router)
    rest.include_router(projects_router.router)
    rest.include_router(prompts_router.router)
    rest.include_router(instances_router.router)
    for handler in HANDLERS:
        rest.include_router(resource_router(handler))
    api.include_router(rest)
    api.include_router(mcp_proxy.router)
    api.include_router(link_router.router)
    api.include_router(ops.router)
    return api


def _gateway(
    settings: Settings, gateway_config: GatewaySettings, db: Database, supervisor: Supervisor
) -> Gateway:
    """The embedded project endpoint. Imported here, not at the top: its modules (mcplocal's
    router, sessions and pipeline, ~0.25 s) load while the supervised servers boot (cold start,
    docs/performance.md)."""
    from mcpctl.mcpd.gateway import Gateway
    from mcpctl.mcpd.link import LinkLimits

    return Gateway(
        db,
        supervisor,
        gateway_config,
        settings.resolved_public_url,
        spool_dir=settings.data_dir / "audit-spool",
        cache_dir=settings.data_dir / "pipeline-cache",
        link_limits=LinkLimits(
            max_links=settings.link_max_links,
            max_links_per_address=settings.link_max_links_per_address,
            auth_deadline_seconds=settings.link_auth_deadline_seconds,
            max_outbox_bytes=settings.link_max_outbox_bytes,
        ),
    )


def _document_errors_as_400(app: FastAPI) -> None:
    """Body validation answers 400 in the one error shape: say so in the OpenAPI document (no 422)."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = original()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
