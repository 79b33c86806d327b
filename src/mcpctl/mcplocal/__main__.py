"""`mcplocal`: the project MCP endpoint in split mode.

`mcplocal serve --mcpd-url URL` serves `/projects/{project}/mcp` (Streamable HTTP, both eras) on
its own port (default 3200), plus `/healthz` (process up) and `/readyz` (mcpd reachable).
`mcplocal stdio --project P` serves one project over stdio for local clients such as Claude Desktop;
its token comes from `MCPCTL_TOKEN_FILE` (re-read whenever mcpd refuses it, so re-provisioning heals
a running client) or `MCPCTL_TOKEN`. Both ask the mcpd `--mcpd-url`, `MCPLOCAL_MCPD_URL` or
`MCPCTL_MCPD_URL` names (DESIGN §4, §8).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import click
import uvicorn
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcpctl.core import invalidation
from mcpctl.core.urlsecrets import redact_access_logs
from mcpctl.mcplocal import front, serving
from mcpctl.mcplocal.endpoint import Ctx, Endpoint
from mcpctl.mcplocal.http import ProjectMcpApp, Refused, TokenGate, loopback_hosts, loopback_origins
from mcpctl.mcplocal.http_protocol import HttpProtocol
from mcpctl.mcplocal.input_rounds import InputRounds
from mcpctl.mcplocal.invalidation import BusSettings, InvalidationBus
from mcpctl.mcplocal.ports import Caller, ControlPlaneUnavailable
from mcpctl.mcplocal.proxy.services import surface_for
from mcpctl.mcplocal.remote import RemotePlane
from mcpctl.mcplocal.router import Router
from mcpctl.mcplocal.session_store import session_store_for
from mcpctl.mcplocal.settings import GatewaySettings

logger = logging.getLogger("mcpctl.mcplocal")


def data_plane(settings: GatewaySettings) -> tuple[RemotePlane, Router, TokenGate, InvalidationBus | None]:
    """The link to mcpd, the router and the token gate, wired so that what mcpd says reaches them: a
    token that ended is refused and its sessions end; a configuration change drops cached views and
    introspections and reaches the sessions of the projects whose servers changed. mcpd records the
    audit events (no audit sink here). With `MCPLOCAL_REDIS_URL`, the same happens for what any mcpd
    replica publishes (not only the linked one), and once after a Redis outage (the bus, not started)."""
    plane = RemotePlane(settings.mcpd_url)
    router = Router(plane, settings.router_settings())
    gate = TokenGate(
        plane,
        settings.token_positive_ttl_ms / 1000,
        settings.token_negative_ttl_ms / 1000,
        settings.token_cache_entries,
    )
    plane.on_token_refused(gate.token_ended)

    def changed() -> None:
        gate.invalidate()
        router.invalidate()
        router.spawn(router.projects_changed())  # open sessions and listen streams hear what changed

    plane.on_changed(changed)
    bus = None
    if settings.redis_url is not None:

        def heard(message: invalidation.Invalidation) -> None:
            if isinstance(message, invalidation.TokensEnded):
                for sha in message.tokens:
                    gate.token_ended(sha)  # as the link's `ended` frame
            else:
                changed()  # as the link's `changed` frame

        bus = InvalidationBus(
            BusSettings(
                settings.redis_url,
                settings.redis_channel,
                stale_seconds=max(settings.token_positive_ttl_ms / 1000, 1.0),
            ),
            heard,
            changed,
        )
    return plane, router, gate, bus


def build_app(settings: GatewaySettings) -> front.Front:
    """mcplocal serve's ASGI app (split data plane)."""
    plane, router, gate, bus = data_plane(settings)
    endpoint = Endpoint(
        router, rounds=InputRounds(settings.input_rounds_settings()), surface=surface_for(router, settings)
    )
    mcp_app = ProjectMcpApp(
        endpoint,
        gate,
        allowed_hosts=loopback_hosts(settings.allowed_hosts),
        allowed_origins=loopback_origins(settings.allowed_origins),
        max_body_bytes=settings.max_body_bytes,
        session_idle_seconds=settings.session_idle_seconds,
        session_limits=settings.session_limits(),
        session_store=session_store_for(settings),
    )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        # Redis is detail, never the verdict: without it this process serves on its TTLs
        redis = {} if bus is None else {"redis": "ok" if bus.connected else "unreachable"}
        reason = await plane.ready()
        if reason is not None:
            return JSONResponse({"status": "unavailable", "mcpd": reason, **redis}, status_code=503)
        return JSONResponse({"status": "ok", "mcpd": "ok", **redis})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if bus is not None:
            bus.start(publish=False)  # mcpd publishes; mcplocal only listens
        try:
            async with mcp_app.sessions.run():
                with serving.settled():  # the collector and anyio's backend sniffing: serving.py
                    yield
        finally:
            if bus is not None:
                await bus.close()
            await endpoint.close()
            await plane.close()

    route = front.project_route(mcp_app)
    app = Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), route], lifespan=lifespan)
    return front.Front(app, route)


class StdioToken:
    """The token of `mcplocal stdio`: MCPCTL_TOKEN_FILE (re-read when refused) or MCPCTL_TOKEN."""

    def __init__(self, gate: TokenGate, project: str, path: Path | None, value: str | None):
        self.gate, self.project, self.path, self.value = gate, project, path, value

    def _read(self) -> str:
        if self.path is not None:
            try:
                return self.path.read_text().strip()
            except OSError as exc:
                raise MCPError(
                    INVALID_REQUEST, f"cannot read MCPCTL_TOKEN_FILE {self.path}: {exc.strerror}"
                ) from None
        return (self.value or "").strip()

    async def caller(self, ctx: Ctx) -> Caller:
        bearer = self._read()
        try:
            answer = await self.gate.check(bearer)
        except Refused as exc:
            if self.path is None:
                raise MCPError(INVALID_REQUEST, f"mcpd refused the token: {exc.reason}") from None
            self.gate.invalidate()  # the file may have been re-provisioned since: read it again
            bearer = self._read()
            try:
                answer = await self.gate.check(bearer)
            except Refused as again:
                raise MCPError(
                    INVALID_REQUEST, f"mcpd refused the token in {self.path}: {again.reason}"
                ) from None
        except ControlPlaneUnavailable as exc:
            raise MCPError(INVALID_REQUEST, f"mcpd is unreachable: {exc}") from None
        assert answer.principal is not None
        if answer.principal.project != self.project:
            raise MCPError(
                INVALID_REQUEST,
                f'the token belongs to project "{answer.principal.project}", not "{self.project}"',
            )
        return Caller(answer.principal, bearer)


async def run_stdio(settings: GatewaySettings, project: str, path: Path | None, value: str | None) -> None:
    plane, router, gate, bus = data_plane(settings)
    token = StdioToken(gate, project, path, value)
    endpoint = Endpoint(
        router,
        caller_of=token.caller,
        rounds=InputRounds(settings.input_rounds_settings()),
        surface=surface_for(router, settings),
    )
    if bus is not None:
        bus.start(publish=False)
    try:
        async with stdio_server() as (read_stream, write_stream):
            with serving.settled():  # the collector and anyio's backend sniffing: serving.py
                await endpoint.server.run(
                    read_stream, write_stream, endpoint.server.create_initialization_options()
                )
    finally:
        if bus is not None:
            await bus.close()
        await endpoint.close()
        await plane.close()


def _settings(**given: Any) -> GatewaySettings:
    try:
        return GatewaySettings(**{k: v for k, v in given.items() if v is not None})
    except (ValidationError, ValueError) as exc:
        click.echo(f"error: invalid settings: {exc}", err=True)
        sys.exit(2)


_MCPD_URL = click.option(
    "--mcpd-url",
    help="The mcpd to ask (MCPLOCAL_MCPD_URL, or MCPCTL_MCPD_URL as the CLI names it; "
    "default http://127.0.0.1:3000).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """mcplocal: the mcpctl project MCP endpoint (split mode; mcpd embeds the same endpoint)."""


@cli.command()
@_MCPD_URL
@click.option("--host", help="Listen address (MCPLOCAL_HTTP_HOST or MCPLOCAL_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (MCPLOCAL_HTTP_PORT or MCPLOCAL_PORT, default 3200).")
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning or error.")
def serve(mcpd_url: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Serve /projects/{project}/mcp over Streamable HTTP."""
    settings = _settings(mcpd_url=mcpd_url, host=host, port=port)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact_access_logs()  # query strings may carry tokens: never logged, at any level
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=log_level,
        access_log=log_level == "debug",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        loop="uvloop",  # the event loop and the HTTP parser in C: CPU per call (docs/mcplocal.md)
        http=HttpProtocol,  # with keep-alive that never drops a request already here
        timeout_keep_alive=settings.http_keep_alive_seconds,
    )


@cli.command()
@click.option("-p", "--project", required=True, help="The project to serve.")
@_MCPD_URL
def stdio(project: str, mcpd_url: str | None) -> None:
    """Serve one project over stdio (token: MCPCTL_TOKEN_FILE or MCPCTL_TOKEN)."""
    settings = _settings(mcpd_url=mcpd_url)
    path = os.environ.get("MCPCTL_TOKEN_FILE")
    value = os.environ.get("MCPCTL_TOKEN")
    if not path and not value:
        click.echo("error: set MCPCTL_TOKEN_FILE (or MCPCTL_TOKEN) to the project's McpToken", err=True)
        sys.exit(2)
    # stdout carries the protocol: logs go to stderr only
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    anyio.run(run_stdio, settings, project, Path(path) if path else None, value)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
