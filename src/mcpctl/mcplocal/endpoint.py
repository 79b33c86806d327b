"""The MCP side of the project endpoint, built on the official SDK's low-level `Server`.

The SDK owns the wire: both eras (2025-11-25 sessions with `initialize`, `Mcp-Session-Id`, GET
streams and DELETE; 2026-07-28 `server/discover`, header validation, `subscriptions/listen`), the
handshake, batching rules, cancellation and the JSON-RPC errors for bad input. Each handler asks the
router, with the raw params so that every field an upstream understands is forwarded untouched.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import mcp_types as types
from mcp.server.caching import CACHEABLE_METHODS, CacheableMethod, CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

import mcpctl
from mcpctl.mcplocal.audience import LOG_LEVELS, LiveSession
from mcpctl.mcplocal.client_capabilities import declares, refusal, required_capability
from mcpctl.mcplocal.exchanges import exchange_of
from mcpctl.mcplocal.input_rounds import InputRounds
from mcpctl.mcplocal.ports import Caller, Message, Notify, Relay
from mcpctl.mcplocal.proxy.gate import Gate
from mcpctl.mcplocal.proxy.pipeline import ContentPipeline
from mcpctl.mcplocal.proxy.ranking import ToolRanker
from mcpctl.mcplocal.proxy.surface import Surface
from mcpctl.mcplocal.router import RESOURCE_NOT_FOUND, Router
from mcpctl.mcplocal.session_store import SessionState

logger = logging.getLogger(__name__)

CALLER_SCOPE_KEY = "mcplocal.caller"
# The caller of the 2026-07-28 tools/call whose Mcp-Param-* headers the SDK is checking: it does so
# before dispatch, through a lookup that gets only the tool's name (`get_tool_input_schema`).
_VALIDATING: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "mcplocal_validating", default=None
)
SESSION_HEADER = "mcp-session-id"
REQUEST_CANCELLED = -32800  # the LSP code the SDK also uses for a cancelled request

Ctx = ServerRequestContext[Any, Any]
CallerOf = Callable[[Ctx], Awaitable[Caller]]
# Surface.call_tool, get_prompt, read_resource: (caller, params, notify, *, relay, modern, audit fields)
Route = Callable[..., Coroutine[Any, Any, dict[str, Any]]]

_NOTIFICATIONS: dict[str, Any] = {
    "notifications/progress": types.ProgressNotification,
    "notifications/message": types.LoggingMessageNotification,
    "notifications/tools/list_changed": types.ToolListChangedNotification,
    "notifications/prompts/list_changed": types.PromptListChangedNotification,
    "notifications/resources/list_changed": types.ResourceListChangedNotification,
    "notifications/resources/updated": types.ResourceUpdatedNotification,
}
_CLIENT_REQUESTS: dict[str, tuple[Any, Any]] = {
    "sampling/createMessage": (types.CreateMessageRequest, types.CreateMessageResult),
    "elicitation/create": (types.ElicitRequest, types.ElicitResult),
    "roots/list": (types.ListRootsRequest, types.ListRootsResult),
}
_EVENTS: dict[str, Callable[[dict[str, Any] | None], ServerEvent | None]] = {
    "notifications/tools/list_changed": lambda _: ToolsListChanged(),
    "notifications/prompts/list_changed": lambda _: PromptsListChanged(),
    "notifications/resources/list_changed": lambda _: ResourcesListChanged(),
    "notifications/resources/updated": lambda p: (
        ResourceUpdated(p["uri"]) if p and isinstance(p.get("uri"), str) else None
    ),
}


_NO_CACHING: dict[CacheableMethod, CacheHint] = {
    cast(CacheableMethod, method): CacheHint(ttl_ms=0, scope="private") for method in CACHEABLE_METHODS
}


def _typed_notification(method: str, params: dict[str, Any] | None) -> Any:
    model = _NOTIFICATIONS.get(method)
    if model is None:
        return None
    body: dict[str, Any] = {"method": method}
    if params is not None:
        body["params"] = params
    try:
        return model.model_validate(body)
    except ValueError:
        logger.debug("dropped a malformed %s from an upstream", method)
        return None


def caller_from_scope(ctx: Ctx) -> Caller:
    """The caller the HTTP auth layer put on the request (every request passes it first)."""
    request = ctx.request
    caller = request.scope.get(CALLER_SCOPE_KEY) if request is not None else None
    if not isinstance(caller, Caller):
        raise MCPError(types.INTERNAL_ERROR, "request reached the router unauthenticated")
    return caller


class GatewayServer(Server[Any]):
    """mcplocal's MCP server: list_changed is always announced (upstreams come and go)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(True, True, True),
            experimental_capabilities,
            extensions,
        )


class Endpoint:
    """The SDK server wired to a router; `caller_of` says who is asking (HTTP: the bearer the auth
    layer checked; stdio: the configured token)."""

    def __init__(
        self,
        router: Router,
        caller_of: CallerOf = lambda ctx: _async(caller_from_scope(ctx)),
        rounds: InputRounds | None = None,
        surface: Surface | None = None,
    ):
        """`rounds`: the 2026-07-28 callers' input_required rounds (its bounds come from
        `GatewaySettings.input_rounds_settings()`); `surface`: the project's proxy model applied
        (`proxy.services.surface_for`; default: without pipeline cache, LLM or embeddings)."""
        self.router, self.caller_of = router, caller_of
        self.surface = surface or Surface(router, ContentPipeline(None, None), Gate(ToolRanker()))
        self.rounds = rounds or InputRounds()
        self.buses: dict[str, InMemorySubscriptionBus] = {}
        self.listeners: dict[str, ListenHandler] = {}
        # sessions taken over from another replica (shared_sessions.py): their state, applied when
        # their first request here names its caller
        self.restoring: dict[str, SessionState] = {}
        router.audience.publishers.append(self._publish)
        self._call_tool = self._interactive("tools/call", self.surface.call_tool)
        self.server = GatewayServer(
            "mcpctl",
            version=mcpctl.__version__,
            title="mcpctl project endpoint",
            # 2026-07-28 results carry freshness hints: lists depend on the token and on upstreams
            # that may change at any moment, so nothing is fresh for long nor shared.
            cache_hints=_NO_CACHING,
            on_list_tools=self._lister("tools"),
            on_list_prompts=self._lister("prompts"),
            on_list_resources=self._lister("resources"),
            on_list_resource_templates=self._lister("resourceTemplates"),
            on_call_tool=self._call_tool,
            on_get_prompt=self._interactive("prompts/get", self.surface.get_prompt),
            on_read_resource=self._interactive("resources/read", self.surface.read_resource),
            on_completion=self._complete,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=self._listen,
            # Without it the SDK runs a whole tools/list through the server for every 2026-07-28
            # tools/call with arguments (14% of mcpd's main thread in the benchmark's profile).
            get_tool_input_schema=self._input_schema,
        )
        # logging/setLevel: applied here per session (upstream instances are shared, so one client's
        # level is never pushed to them); registered directly to avoid the SDK's deprecation warning
        # for 2026.
        self.server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_level)
        # The SDK's default OpenTelemetry span per message: mcpctl installs no tracer, and the span and
        # its context attach were ~4% of mcpd's loop per call at c=8 (docs/mcplocal.md "Performance").
        self.server.middleware = [
            m for m in self.server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"
        ]

    async def direct_tool_call(self, ctx: Any) -> dict[str, Any]:
        """tools/call of a legacy session answered by direct.py, with a context that has what the
        handler reads of the SDK's (request, session, request_id, protocol_version, params)."""
        result: dict[str, Any] = await self._call_tool(ctx, None)
        return result

    # ---- helpers -------------------------------------------------------------------------------

    async def prepare_tool_call(
        self, caller: Caller, tool: str | None
    ) -> contextvars.Token[Caller | None] | None:
        """Before a 2026-07-28 tools/call reaches the SDK: make the caller's tool lists cached and
        name the caller for `_input_schema` (in this task's context; reset with the token). When
        the lists cannot be had, validation is skipped and the call itself reports the failure."""
        try:
            await self.router.warm_tools(caller, tool)
        except Exception as exc:  # boundary: the handler meets the same failure and answers it
            logger.debug("no tool schemas for Mcp-Param validation: %s", exc)
            return None
        return _VALIDATING.set(caller)

    @staticmethod
    def finish_tool_call(token: contextvars.Token[Caller | None] | None) -> None:
        if token is not None:
            _VALIDATING.reset(token)

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        caller = _VALIDATING.get()
        return None if caller is None else self.router.cached_tool_schema(caller, name)

    async def _caller(self, ctx: Ctx) -> Caller:
        caller = await self.caller_of(ctx)
        session_id = _session_id(ctx)
        if session_id is not None:
            live = self.router.sessions.get(session_id)
            if live is None:
                live = LiveSession(
                    session_id,
                    caller.project,
                    caller,
                    _standalone(ctx),
                    set(),
                    time.monotonic(),
                    protocol_version=ctx.protocol_version,
                    capabilities=ctx.session.client_capabilities,
                )
                self.router.remember(live)
                restored = self.restoring.pop(session_id, None)
                if restored is not None:
                    self._restore(live, restored)
            elif live.caller.token_sha == caller.token_sha or ctx.request is None:
                # a fresher introspection (stdio: the one session, re-provisioned with a new token)
                live.seen, live.caller = time.monotonic(), caller
            else:  # the SDK refuses this on legacy requests; never rebind another token's session
                raise MCPError(types.INVALID_REQUEST, "Session not found")
        return caller

    def _restore(self, live: LiveSession, state: SessionState) -> None:
        """A session taken over from another replica: its level and gate reveal as they were; its
        resource subscriptions are held upstream again (in the background: the request goes on)."""
        live.level, live.revealed = state.level, state.revealed
        for uri in state.subscriptions:
            self.router.spawn(self.router.subscribe(live.caller, uri, live.key, on=True))

    @staticmethod
    async def _cancellable(ctx: Ctx, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """`work`, cancelled (with its upstream call) when the HTTP client goes away first."""
        request = ctx.request
        exchange = exchange_of(request.scope if request is not None else None)
        if exchange is None:
            return await work
        with exchange.handling():
            return await work
        raise MCPError(REQUEST_CANCELLED, "Request cancelled: the client went away")

    def _relay(self, ctx: Ctx) -> Callable[[Message], Awaitable[None]]:
        """Forward an upstream's progress and log notifications onto this request's stream (log
        lines at the level the legacy session set with logging/setLevel, and through the SDK's
        gate: on 2026-07-28 only when this request opted in, at its level)."""
        session_id = _session_id(ctx)

        async def relay(message: Message) -> None:
            method = message.get("method")
            params = message.get("params")
            if method == "notifications/message" and isinstance(params, dict):
                live = self.router.sessions.get(session_id) if session_id is not None else None
                level = params.get("level")
                if level in LOG_LEVELS and (live is None or live.wants_log(params)):
                    logger_name = params.get("logger")
                    await ctx.session.send_log_message(
                        level,
                        params.get("data"),
                        logger_name if isinstance(logger_name, str) else None,
                        related_request_id=ctx.request_id,
                    )
                return
            typed = _typed_notification(str(method), params if isinstance(params, dict) else None)
            if typed is not None:
                await ctx.session.send_notification(typed, related_request_id=ctx.request_id)

        return relay

    @staticmethod
    def _ask(ctx: Ctx) -> Relay:
        """Put an upstream's sampling, elicitation or roots request to this caller's client, on
        this request's stream (2025-11-25 sessions), when the client declared the capability it
        needs; otherwise the upstream gets an error answer."""

        async def ask(message: Message) -> Message:
            method = str(message.get("method"))
            models = _CLIENT_REQUESTS.get(method)
            if models is None:
                return {"error": {"code": types.METHOD_NOT_FOUND, "message": f"{method} is not relayed"}}
            request_model, result_model = models
            required = required_capability(message)
            if required is not None and not declares(_declared(ctx), required):
                return refusal(method, required)
            body: dict[str, Any] = {"method": method}
            if message.get("params") is not None:
                body["params"] = message["params"]
            try:
                request = request_model.model_validate(body)
                result = await ctx.session.send_request(
                    request, result_model, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
                )
            except MCPError as exc:
                error: dict[str, Any] = {"code": exc.code, "message": exc.message}
                if exc.data is not None:
                    error["data"] = exc.data
                return {"error": error}
            except ValueError as exc:
                return {"error": {"code": types.INVALID_PARAMS, "message": f"invalid {method}: {exc}"}}
            return {"result": result.model_dump(by_alias=True, mode="json", exclude_none=True)}

        return ask

    @staticmethod
    def _finish(ctx: Ctx, result: dict[str, Any]) -> dict[str, Any]:
        """An upstream (2025-era) result, as the caller's era needs it: 2026-07-28 results say
        whether they are complete (`resultType`)."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and "resultType" not in result:
            return {**result, "resultType": "complete"}
        return result

    @staticmethod
    def _params(ctx: Ctx) -> dict[str, Any]:
        return dict(ctx.params or {})

    def _lister(self, kind: str) -> Callable[[Ctx, Any], Awaitable[Any]]:
        async def handler(ctx: Ctx, params: Any) -> Any:
            caller = await self._caller(ctx)
            cursor = self._params(ctx).get("cursor")
            result = await self.surface.list_items(
                caller,
                kind,
                cursor if isinstance(cursor, str) else None,
                modern=ctx.protocol_version in MODERN_PROTOCOL_VERSIONS,
                session=_session_id(ctx),
            )
            return self._finish(ctx, result)

        return handler

    def _audit_fields(self, ctx: Ctx) -> dict[str, Any]:
        request = ctx.request
        client = getattr(request, "client", None) if request is not None else None
        state = request.scope.get("state", {}) if request is not None else {}
        return {
            "session": _session_id(ctx),
            "request_id": state.get("request_id") if isinstance(state, dict) else None,
            "client_addr": client.host[:64] if client else None,
        }

    # ---- handlers ------------------------------------------------------------------------------

    def _interactive(self, method: str, route: Route) -> Callable[[Ctx, Any], Awaitable[Any]]:
        """The handler of a request whose upstream may ask the client mid-call (tools/call,
        prompts/get, resources/read): a legacy caller is asked on its own stream, a 2026-07-28
        caller gets `input_required` rounds (input_rounds.py)."""

        async def handler(ctx: Ctx, params: Any) -> Any:
            caller = await self._caller(ctx)
            fields, forwarded = self._audit_fields(ctx), self._params(ctx)
            modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS

            def start(notify: Notify, relay: Relay) -> Coroutine[Any, Any, dict[str, Any]]:
                return route(caller, forwarded, notify, relay=relay, modern=modern, **fields)

            if not modern:
                work = start(self._relay(ctx), self._ask(ctx))
            else:
                meta = forwarded.get("_meta")
                declared = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
                work = self.rounds.run(caller.token_sha, method, forwarded, declared, self._relay(ctx), start)
                work = _modern_errors(work)
            return self._finish(ctx, await self._cancellable(ctx, work))

        return handler

    async def _complete(self, ctx: Ctx, params: Any) -> Any:
        caller = await self._caller(ctx)
        return self._finish(
            ctx, await self._cancellable(ctx, self.surface.complete(caller, self._params(ctx)))
        )

    async def _subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> Any:
        caller = await self._caller(ctx)
        return await self.router.subscribe(caller, str(params.uri), _session_id(ctx), on=True)

    async def _unsubscribe(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> Any:
        caller = await self._caller(ctx)
        return await self.router.subscribe(caller, str(params.uri), _session_id(ctx), on=False)

    async def _set_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> Any:
        await self._caller(ctx)
        self.router.set_level(_session_id(ctx), str(params.level))
        return {}

    async def _listen(self, ctx: Ctx, params: types.SubscriptionsListenRequestParams) -> Any:
        """2026-07-28 change notifications: one bus per project, so a stream only hears about the
        servers of its own project."""
        caller = await self._caller(ctx)
        listener = self.listeners.get(caller.project)
        if listener is None:
            bus = self.buses[caller.project] = InMemorySubscriptionBus()
            listener = self.listeners[caller.project] = ListenHandler(bus)
        # its resource subscriptions are held upstream on its behalf while the stream is open
        holder = f"listen:{uuid.uuid4().hex}"
        self.router.audience.stream_opened(caller.project)
        try:
            await self.router.servers(caller)  # the project's servers are known: events find it
            for uri in params.notifications.resource_subscriptions or ():
                try:
                    await self.router.subscribe(caller, str(uri), holder, on=True)
                except MCPError as exc:
                    logger.info("listen stream: %s cannot be subscribed: %s", uri, exc.message)
            return await listener(ctx, params)
        finally:
            self.router.release(holder)
            self.router.audience.stream_closed(caller.project)

    async def _publish(self, project: str, method: str, params: dict[str, Any] | None) -> None:
        """A notification for a project's 2026-07-28 listen streams (its bus, if one is open)."""
        bus = self.buses.get(project)
        make = _EVENTS.get(method)
        if bus is None or make is None:
            return
        event = make(params)
        if event is not None:
            await bus.publish(event)

    async def close(self) -> None:
        self.rounds.close()
        for listener in self.listeners.values():
            listener.close()
        await self.surface.aclose()


async def _modern_errors(work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """2026-07-28 names "resource not found" -32602 (SEP-2164; -32002 in 2025-11-25, which an upstream
    on a 2025 session, and the router, answer)."""
    try:
        return await work
    except MCPError as exc:
        if exc.code == RESOURCE_NOT_FOUND:
            raise MCPError(types.INVALID_PARAMS, exc.message, exc.data) from None
        raise


async def _async(value: Caller) -> Caller:
    return value


def _session_id(ctx: Ctx) -> str | None:
    """The legacy session the request belongs to. A 2026-07-28 request is stateless: an
    `Mcp-Session-Id` it carries names nothing (it could name another token's session)."""
    request = ctx.request
    if request is None:
        return "stdio"
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    value = request.headers.get(SESSION_HEADER)
    return value if isinstance(value, str) and value else None


def _declared(ctx: Ctx) -> dict[str, Any]:
    """The capabilities the caller's client declared (legacy: in `initialize`), in wire shape."""
    capabilities = ctx.session.client_capabilities
    if capabilities is None:
        return {}
    declared: dict[str, Any] = capabilities.model_dump(by_alias=True, mode="json", exclude_none=True)
    return declared


def _standalone(ctx: Ctx) -> Callable[[str, dict[str, Any] | None], Awaitable[None]]:
    session = ctx.session

    async def send(method: str, params: dict[str, Any] | None) -> None:
        typed = _typed_notification(method, params)
        if typed is not None:
            await session.send_notification(typed)

    return send
