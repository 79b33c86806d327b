"""`mcpd`: run the control plane (flag > MCPD_* environment > config file > default)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
import uvicorn
from pydantic import ValidationError

from mcpctl.core.crypto import Passwords, generate_password
from mcpctl.core.errors import InvalidError
from mcpctl.core.link_protocol import MAX_INBOUND_FRAME_BYTES
from mcpctl.mcpd import datadir, logs
from mcpctl.mcpd.app import create_app
from mcpctl.mcpd.bootstrap import reset_admin
from mcpctl.mcpd.settings import Settings
from mcpctl.storage.database import Database


def _settings(given: dict[str, Any]) -> Settings:
    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except (ValidationError, ValueError) as exc:
        click.echo(f"error: invalid settings: {exc}", err=True)
        sys.exit(2)


def _prepare_data_dir(settings: Settings) -> None:
    """Owner-only files (the database, its -wal/-shm, everything mcpd writes) in a usable data dir;
    exit 1 with one line naming the path otherwise."""
    os.umask(0o077)
    try:
        datadir.prepare(settings.data_dir, settings.resolved_database_url)
    except datadir.DataDirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


_data_dir = click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Data directory (MCPD_DATA_DIR)."
)
_database_url = click.option(
    "--database-url", help="Database URL (MCPD_DATABASE_URL; default SQLite in the data dir)."
)
_config = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML settings file (MCPD_CONFIG_FILE).",
)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", help="Listen address (MCPD_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (MCPD_PORT, default 3000).")
@_data_dir
@_database_url
@_config
@click.option("--log-level", help="debug, info, warning or error (MCPD_LOG_LEVEL).")
@click.option("--log-json/--no-log-json", default=None, help="JSON log lines (MCPD_LOG_JSON).")
@click.pass_context
def cli(ctx: click.Context, /, **flags: Any) -> None:
    """mcpd: the mcpctl control plane (REST API, database, RBAC, audit). With no command, serve."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(flags)
    _prepare_data_dir(settings)
    logs.configure(settings.log_level, json_lines=settings.log_json)
    app = create_app(settings)
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
        # the event loop and the HTTP parser in C: the project endpoint's CPU per call (docs/mcplocal.md)
        loop="uvloop",
        http="httptools",
        # the data-plane link (mcplocal): frames in are callers' requests; no compression (CPU per call)
        ws_max_size=MAX_INBOUND_FRAME_BYTES,
        ws_per_message_deflate=False,
    )
    _Server(config, app).run()


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


@cli.group()
def admin() -> None:
    """Break-glass administration on the mcpd host (direct database access, no API)."""


@admin.command("reset")
@click.option("--email", required=True, help="The user to make an administrator (created if missing).")
@click.option(
    "--password-stdin", is_flag=True, help="Read the new password from stdin (else one is generated)."
)
@_data_dir
@_database_url
@_config
def admin_reset(email: str, password_stdin: bool, **flags: Any) -> None:
    """Restore administrator access: EMAIL becomes an enabled member of group `admins` with a new
    password, RbacDefinition `admins` grants full access again, and EMAIL's logins end.

    For when no one can edit RBAC any more. Needs the same data dir / database settings as mcpd."""
    settings = _settings(flags)
    _prepare_data_dir(settings)
    logs.configure("warning", json_lines=settings.log_json)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
    if len(password) < 8:
        click.echo("error: the password must be at least 8 characters", err=True)
        sys.exit(2)
    try:
        done = asyncio.run(_reset(settings, email, password))
    except InvalidError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    click.echo(done)
    if not password_stdin:
        click.echo(f"password: {password}")


async def _reset(settings: Settings, email: str, password: str) -> str:
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        passwords = Passwords(
            time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
        )
        return await reset_admin(db, passwords, email, password)
    finally:
        await db.dispose()


def main() -> None:
    cli()
