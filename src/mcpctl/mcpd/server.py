"""mcpd's HTTP server: uvicorn serving the app, with the shutdown order MCP's long-lived streams need."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType
from typing import Any

import uvicorn

from mcpctl.core.link_protocol import MAX_INBOUND_FRAME_BYTES
from mcpctl.mcpd.app import create_app
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.supervisor.prelaunch import Prelaunched
from mcpctl.mcplocal.http_protocol import HttpProtocol


async def serve(
    settings: Settings, prelaunched: Prelaunched | None = None, stop: asyncio.Event | None = None
) -> None:
    """Serve mcpd until it is told to stop: a signal uvicorn handles, or `stop` set (a SIGTERM that
    came before uvicorn handled signals). In the running event loop: uvloop, made by `mcpd`."""
    app = create_app(settings, prelaunched=prelaunched)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=False,  # audit records the real peer; X-Forwarded-For is not trusted
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        server_header=False,
        timeout_graceful_shutdown=10,
        # the HTTP parser in C: the project endpoint's CPU per call (docs/mcplocal.md), with
        # keep-alive that never drops a request already here; the event loop (uvloop) is the
        # caller's: `serve` runs in it
        http=HttpProtocol,
        timeout_keep_alive=settings.http_keep_alive_seconds,
        # the data-plane link (mcplocal): frames in are callers' requests; no compression (CPU per call)
        ws_max_size=MAX_INBOUND_FRAME_BYTES,
        ws_per_message_deflate=False,
    )
    server = _Server(config, app)
    watcher = asyncio.create_task(_stop_when(stop, server)) if stop is not None else None
    try:
        await server.serve()
    finally:
        if watcher is not None:
            watcher.cancel()


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.handle_exit(signal.SIGTERM, None)


class _Server(uvicorn.Server):
    """uvicorn waits for open connections before the app's shutdown runs; long-lived MCP
    notification streams would hold it for the whole grace period, so they are ended first."""

    def __init__(self, config: uvicorn.Config, app: Any):
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self.app.state, "mcpd", None)
        sessions = getattr(state, "proxy_sessions", None)
        if sessions is not None:
            sessions.close_all_soon()
        gateway = getattr(state, "gateway", None)
        if gateway is not None:
            gateway.links.close_all_soon()
        super().handle_exit(sig, frame)
