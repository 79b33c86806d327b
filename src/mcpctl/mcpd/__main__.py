"""`mcpd`: run the control plane (flag > MCPD_* environment > config file > default)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
import uvicorn
from pydantic import ValidationError

from mcpctl.mcpd import datadir, logs
from mcpctl.mcpd.app import create_app
from mcpctl.mcpd.settings import Settings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", help="Listen address (MCPD_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (MCPD_PORT, default 3000).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (MCPD_DATA_DIR).")
@click.option("--database-url", help="Database URL (MCPD_DATABASE_URL; default SQLite in the data dir).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML settings file (MCPD_CONFIG_FILE).",
)
@click.option("--log-level", help="debug, info, warning or error (MCPD_LOG_LEVEL).")
@click.option("--log-json/--no-log-json", default=None, help="JSON log lines (MCPD_LOG_JSON).")
def cli(**flags: Any) -> None:
    """mcpd: the mcpctl control plane (REST API, database, RBAC, audit)."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**given)
    except (ValidationError, ValueError) as exc:
        click.echo(f"error: invalid settings: {exc}", err=True)
        sys.exit(2)
    os.umask(0o077)  # the database, its -wal/-shm and every file mcpd writes: owner only
    try:
        datadir.prepare(settings.data_dir, settings.resolved_database_url)
    except datadir.DataDirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
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
        super().handle_exit(sig, frame)


def main() -> None:
    cli()
