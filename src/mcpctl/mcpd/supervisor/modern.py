"""A 2026-07-28 channel to a `transport: http` upstream: the caller's own request, envelope and all.

mcpd's connections to upstreams (connection.py) speak 2025-11-25. A 2026-07-28 caller's request sent
down one loses its envelope, so the upstream can neither check the caller's declared capabilities
(-32021) nor answer with an `input_required` result (multi-round trip). 2026-07-28 is stateless, so
nothing stops the gateway from forwarding such a request as what it is: one POST carrying the
caller's `_meta` envelope, whose answer (`resultType: input_required` included) goes back untouched.
The retry carries `inputResponses` and the upstream's opaque `requestState` in its params, so the
gateway keeps no state between rounds.

Only Streamable HTTP upstreams: a stdio process is locked to one era by its first request, and
mcpd's shared connection to it is 2025-11-25, so stdio (and legacy HTTP+SSE) upstreams stay on the
2025 path, where the envelope is stripped.

The wire is the SDK's own client transport (`streamable_http_client`), one transport per request on
a shared `httpx2` client, so every message read belongs to that request (progress and log lines
need no attribution) and closing it is the 2026 cancellation. The transport POSTs, parses JSON or
SSE answers and turns HTTP error statuses into JSON-RPC errors. The routing headers (Mcp-Protocol-
Version, Mcp-Method, Mcp-Name, Mcp-Param-*) come from `mcp.shared.inbound`'s public helpers and
ride as per-message headers: `ClientSession` cannot be used, as its stamp writes its own envelope
over the caller's and it parses results into models.

Whether an upstream speaks 2026-07-28 is asked once per replica generation (`server/discover`) and
remembered until that replica reconnects. The server's configured headers (its own credentials,
secrets resolved) are sent; the caller's token never is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    CONNECTION_CLOSED,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    PROTOCOL_VERSION_META_KEY,
    UNSUPPORTED_PROTOCOL_VERSION,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)
from mcp_types.version import LATEST_MODERN_VERSION, MODERN_PROTOCOL_VERSIONS

import mcpctl
from mcpctl.mcpd.supervisor.connection import Notify, UpstreamGone, UpstreamTimeout
from mcpctl.mcpd.supervisor.instance import ServerConfig
from mcpctl.mcpd.supervisor.keepalive import keepalive_client
from mcpctl.mcpd.supervisor.links import describe_exception
from mcpctl.mcpd.supervisor.listening import UpstreamListener

logger = logging.getLogger(__name__)

Message = dict[str, Any]
SCHEMA_TTL_SECONDS = 60.0  # how long the tools' Mcp-Param header maps are trusted
# A `server/discover` that said nothing (the wire failed, a 5xx, a timeout) is not asked again for
# this long: requests take the 2025 path meanwhile instead of each waiting out another discovery.
UNKNOWN_SUPPORT_SECONDS = 10.0
MAX_LIST_PAGES = 100
_ENVELOPE = (PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY)
# answers that say nothing about the upstream's protocol support (it failed, or the wire did)
_INDEFINITE = frozenset({INTERNAL_ERROR, CONNECTION_CLOSED})
_RELAYED_NOTIFICATIONS = frozenset({"notifications/progress", "notifications/message"})
# (server, notification): an upstream's notification that belongs to no caller (list_changed,
# resources/updated) heard on a 2026 exchange, for the same listeners as the shared connection's
Heard = Callable[[str, Message], Awaitable[None]]


def caller_version(params: Mapping[str, Any] | None) -> str | None:
    """The 2026-era protocol version a caller's request carries in its envelope, if any."""
    meta = (params or {}).get("_meta")
    version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, Mapping) else None
    return version if isinstance(version, str) and version in MODERN_PROTOCOL_VERSIONS else None


def routing_headers(method: str, params: Mapping[str, Any], version: str) -> dict[str, str]:
    """The headers a 2026-07-28 POST repeats from its body (the upstream checks they agree)."""
    headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: method}
    key = NAME_BEARING_METHODS.get(method)
    name = params.get(key) if key is not None else None
    if isinstance(name, str):
        headers[MCP_NAME_HEADER] = encode_header_value(name)
    return headers


def _envelope_only(params: Mapping[str, Any]) -> dict[str, Any]:
    meta = params.get("_meta")
    if not isinstance(meta, Mapping):
        return {}
    return {key: meta[key] for key in _ENVELOPE if key in meta}


def _error_code(answer: Message) -> int | None:
    error = answer.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else None


def _supported_versions(answer: Message) -> frozenset[str] | None:
    """The modern versions a `server/discover` answer names; None when the answer says nothing."""
    result = answer.get("result")
    if isinstance(result, dict):
        versions = result.get("supportedVersions")
        return frozenset(v for v in versions if isinstance(v, str)) if isinstance(versions, list) else None
    code = _error_code(answer)
    if code is None or code in _INDEFINITE:
        return None
    if code == UNSUPPORTED_PROTOCOL_VERSION:
        data = answer["error"].get("data")
        supported = data.get("supported") if isinstance(data, dict) else None
        if isinstance(supported, list):
            return frozenset(v for v in supported if isinstance(v, str))
    return frozenset()  # method not found, a 2025-only server's "missing session", …: no 2026 here


class ModernChannel:
    """2026-07-28 requests to one upstream URL, with its configured headers."""

    def __init__(
        self,
        name: str,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float = 10.0,
        heard: Heard | None = None,
    ):
        self.name, self.url, self.headers, self.heard = name, url, dict(headers), heard
        self._http = keepalive_client(
            # no read limit of its own: every exchange runs under the caller's call deadline
            headers=self.headers,
            timeout=httpx2.Timeout(connect_timeout, read=None),
        )
        self._ids = itertools.count(1)
        # replica → (generation, versions, until when the answer holds)
        self._versions: dict[str, tuple[object, frozenset[str], float]] = {}
        self._header_maps: dict[str, dict[tuple[str, ...], str]] = {}
        self._maps_at = -SCHEMA_TTL_SECONDS
        self._lock = asyncio.Lock()
        self.inflight = 0
        self.retired = False
        self.listener: UpstreamListener | None = None  # its change events, once it speaks 2026

    def serves(self, config: ServerConfig) -> bool:
        return config.url == self.url and config.headers == self.headers

    async def aclose(self) -> None:
        if self.listener is not None:
            await self.listener.aclose()
        await self._http.aclose()

    def _listen(self, versions: frozenset[str]) -> None:
        """Hold a listen stream to the upstream for its list changes (listening.py)."""
        if self.listener is not None or self.heard is None or self.retired:
            return
        version = LATEST_MODERN_VERSION if LATEST_MODERN_VERSION in versions else max(versions)
        self.listener = UpstreamListener(
            self.name, self.url, self._http, version, self.heard, routing_headers
        )
        self.listener.start()

    # ---- support ---------------------------------------------------------------------------------

    async def supports(self, version: str, replica: str, generation: object, timeout: float) -> bool:
        """Whether the upstream serves `version`: asked (`server/discover`) once per replica and
        generation (a reconnected replica may be a new upstream); an answer that says nothing (the
        wire failed) counts as "no" for `UNKNOWN_SUPPORT_SECONDS`, then it is asked again."""
        known = self._known(replica, generation)
        if known is None:
            async with self._lock:  # one discovery at a time; those waiting use its answer
                known = self._known(replica, generation)
                if known is None:
                    versions = await self._discover(timeout)
                    if versions is None:
                        known = frozenset()
                        until = time.monotonic() + UNKNOWN_SUPPORT_SECONDS
                    else:
                        known, until = versions, float("inf")
                        modern = versions & frozenset(MODERN_PROTOCOL_VERSIONS)
                        if modern:
                            self._listen(modern)
                        logger.info(
                            "server %s (%s) serves 2026-era versions over HTTP: %s",
                            self.name,
                            replica,
                            ", ".join(sorted(versions)) or "none",
                        )
                    self._versions[replica] = (generation, known, until)
        return version in known

    def _known(self, replica: str, generation: object) -> frozenset[str] | None:
        entry = self._versions.get(replica)
        if entry is None or entry[0] != generation or entry[2] <= time.monotonic():
            return None
        return entry[1]

    async def _discover(self, timeout: float) -> frozenset[str] | None:
        params = {
            "_meta": {
                PROTOCOL_VERSION_META_KEY: LATEST_MODERN_VERSION,
                CLIENT_INFO_META_KEY: {"name": "mcpd", "version": mcpctl.__version__},
                CLIENT_CAPABILITIES_META_KEY: {},
            }
        }
        headers = routing_headers("server/discover", params, LATEST_MODERN_VERSION)
        try:
            async with asyncio.timeout(timeout):
                answer = await self._exchange("server/discover", params, headers, None)
        except (TimeoutError, UpstreamGone) as exc:
            logger.warning("server %s: server/discover failed: %s", self.name, exc or "timed out")
            return None
        return _supported_versions(answer)

    # ---- requests --------------------------------------------------------------------------------

    async def request(
        self, method: str, params: dict[str, Any], *, timeout: float, notify: Notify | None
    ) -> Message:
        """Send the caller's request as a 2026-07-28 request; the upstream's JSON-RPC answer
        (`result` or `error`) as it came. Progress and log notifications go to `notify`."""
        version = caller_version(params)
        assert version is not None, "a 2026-era request carries its protocol version"
        self.inflight += 1
        try:
            async with asyncio.timeout(timeout):
                headers = routing_headers(method, params, version)
                if method != "tools/call":
                    return await self._exchange(method, params, headers, notify)
                answer = await self._exchange(
                    method, params, headers | await self._param_headers(params, refresh=False), notify
                )
                if _error_code(answer) == HEADER_MISMATCH:  # the tool's schema changed: list again
                    answer = await self._exchange(
                        method, params, headers | await self._param_headers(params, refresh=True), notify
                    )
                return answer
        except TimeoutError:
            raise UpstreamTimeout(f"server {self.name} did not answer {method} within {timeout:g}s") from None
        finally:
            self.inflight -= 1
            if self.retired and self.inflight == 0:
                await self.aclose()

    async def _param_headers(self, params: Mapping[str, Any], *, refresh: bool) -> dict[str, str]:
        """`Mcp-Param-*` for a tools/call: the tool's `x-mcp-header` arguments, from a listing."""
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, dict) or not arguments:
            return {}
        stale = time.monotonic() - self._maps_at > SCHEMA_TTL_SECONDS
        if refresh or stale or name not in self._header_maps:
            await self._list_tools(params)
        return mcp_param_headers(self._header_maps.get(name, {}), arguments)

    async def _list_tools(self, params: Mapping[str, Any]) -> None:
        """Learn each tool's `x-mcp-header` map from a 2026 listing in the caller's envelope (what
        the caller may see); a tool with invalid annotations gets none, as clients drop it."""
        envelope = _envelope_only(params)
        version = caller_version(params) or LATEST_MODERN_VERSION
        maps: dict[str, dict[tuple[str, ...], str]] = {}
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page: dict[str, Any] = {"_meta": envelope, **({"cursor": cursor} if cursor else {})}
            headers = routing_headers("tools/list", page, version)
            answer = await self._exchange("tools/list", page, headers, None)
            result = answer.get("result")
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                logger.warning("server %s: tools/list for Mcp-Param headers failed: %s", self.name, answer)
                return
            for tool in result["tools"]:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    schema = tool.get("inputSchema")
                    valid = find_invalid_x_mcp_header(schema) is None
                    maps[tool["name"]] = x_mcp_header_map(schema) if valid else {}
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        self._header_maps, self._maps_at = maps, time.monotonic()

    async def _exchange(
        self, method: str, params: dict[str, Any], headers: dict[str, str], notify: Notify | None
    ) -> Message:
        """One POST through the SDK's transport; every message read back belongs to it."""
        request_id = next(self._ids)
        request = JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params)
        try:
            async with streamable_http_client(self.url, http_client=self._http, terminate_on_close=False) as (
                read,
                write,
            ):
                await write.send(SessionMessage(request, metadata=ClientMessageMetadata(headers=headers)))
                async for item in read:
                    if isinstance(item, Exception):
                        raise UpstreamGone(f"server {self.name}: {describe_exception(item)}")
                    message = item.message
                    if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id == request_id:
                        answer: Message = message.model_dump(by_alias=True, mode="json", exclude_unset=True)
                        return answer
                    # other notifications (list_changed, resources/updated) are the server's news
                    # for everyone; server→client requests have no place on the 2026 wire
                    if not isinstance(message, JSONRPCNotification):
                        continue
                    body = message.model_dump(by_alias=True, mode="json", exclude_unset=True)
                    if message.method in _RELAYED_NOTIFICATIONS:
                        if notify is not None:
                            await notify(body)
                    elif self.heard is not None:
                        await self.heard(self.name, body)
        except UpstreamGone:
            raise
        except Exception as exc:  # boundary: the wire failed (refused, reset, bad body)
            raise UpstreamGone(f"server {self.name}: {describe_exception(exc)}") from exc
        raise UpstreamGone(f"server {self.name} closed the stream before answering {method}")


class ModernChannels:
    """One `ModernChannel` per `transport: http` server, replaced when its URL or headers change."""

    def __init__(self, heard: Heard | None = None) -> None:
        self._channels: dict[str, ModernChannel] = {}
        self.heard = heard

    async def channel(self, config: ServerConfig) -> ModernChannel | None:
        """The channel for a server, or None when it cannot speak 2026-07-28 through mcpd (stdio,
        legacy HTTP+SSE, not configured). A channel whose server changed is closed once its last
        request ends."""
        if config.transport != "http" or not config.url or config.error is not None:
            return None
        if httpx2.URL(config.url).path.rstrip("/").endswith("/sse"):
            return None
        old = self._channels.get(config.name)
        if old is not None and old.serves(config):
            return old
        # swapped in before anything is awaited, so concurrent callers share the one new channel
        channel = self._channels[config.name] = ModernChannel(
            config.name, config.url, config.headers, connect_timeout=config.init_seconds, heard=self.heard
        )
        if old is not None:
            old.retired = True
            if old.inflight == 0:
                await old.aclose()
        return channel

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.aclose()
