"""A 2026-07-28 upstream's change events, heard through a `subscriptions/listen` stream of mcpd's.

A server that speaks 2026-07-28 announces list changes to its `subscriptions/listen` streams only,
not on the requests that caused them (a 2026 request has no session to send them to). So once mcpd
sends a server 2026 requests (supervisor/modern.py), it holds one listen stream to it for the tools,
prompts and resources list_changed events, and hands each to `heard` as the notification it stands
for, like those from mcpd's 2025-11-25 connections (DESIGN §5 "Lists follow the project"). A stream
that drops is opened again (1 s, doubling to 30 s); events missed meanwhile are unknown, so a
reopened stream is followed by all three list_changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    METHOD_NOT_FOUND,
    PROTOCOL_VERSION_META_KEY,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)

import mcpctl

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Heard = Callable[[str, Message], Awaitable[None]]
LIST_CHANGED = (
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
)
_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
FIRST_RETRY_SECONDS = 1.0
LAST_RETRY_SECONDS = 30.0


class _NotOffered(Exception):
    """The server has no `subscriptions/listen`."""


class UpstreamListener:
    """One `subscriptions/listen` stream to a server, held until `aclose`."""

    def __init__(
        self,
        name: str,
        url: str,
        http: httpx2.AsyncClient,
        version: str,
        heard: Heard,
        routing_headers: Callable[[str, dict[str, Any], str], dict[str, str]],
    ):
        self.name, self.url, self.http, self.version, self.heard = name, url, http, version, heard
        self._headers = routing_headers
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"listen {self.name}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay, reopened = FIRST_RETRY_SECONDS, False
        while True:
            try:
                async for acknowledged in self._listen():
                    if acknowledged:
                        delay = FIRST_RETRY_SECONDS
                        if reopened:  # what changed while no stream was open is unknown
                            for method in LIST_CHANGED:
                                await self.heard(self.name, {"jsonrpc": "2.0", "method": method})
            except asyncio.CancelledError:
                raise
            except _NotOffered:
                logger.info("server %s does not offer subscriptions/listen", self.name)
                return
            except Exception as exc:  # boundary: the wire failed; listen again later
                logger.info("server %s: subscriptions/listen ended: %s", self.name, exc or type(exc).__name__)
            reopened = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY_SECONDS)

    async def _listen(self) -> AsyncIterator[bool]:
        """Yield True at the acknowledgment (and False per event passed on) until the stream ends."""
        params: dict[str, Any] = {
            "_meta": {
                PROTOCOL_VERSION_META_KEY: self.version,
                CLIENT_INFO_META_KEY: {"name": "mcpd", "version": mcpctl.__version__},
                CLIENT_CAPABILITIES_META_KEY: {},
            },
            "notifications": {
                "toolsListChanged": True,
                "promptsListChanged": True,
                "resourcesListChanged": True,
            },
        }
        request_id = next(self._ids)
        request = JSONRPCRequest(jsonrpc="2.0", id=request_id, method="subscriptions/listen", params=params)
        headers = self._headers("subscriptions/listen", params, self.version)
        async with streamable_http_client(self.url, http_client=self.http, terminate_on_close=False) as (
            read,
            write,
        ):
            await write.send(SessionMessage(request, metadata=ClientMessageMetadata(headers=headers)))
            async for item in read:
                if isinstance(item, Exception):
                    raise item
                message = item.message
                if isinstance(message, JSONRPCError) and message.id == request_id:
                    if message.error.code == METHOD_NOT_FOUND:
                        raise _NotOffered
                    return  # refused: try again later
                if isinstance(message, JSONRPCResponse) and message.id == request_id:
                    return  # the server ended the stream
                if not isinstance(message, JSONRPCNotification):
                    continue
                if message.method == _ACKNOWLEDGED:
                    yield True
                elif message.method in LIST_CHANGED:
                    await self.heard(self.name, {"jsonrpc": "2.0", "method": message.method})
                    yield False
