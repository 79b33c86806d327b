"""`mcpd`: run the control plane (flag > MCPD_* environment > config file > default).

Serving starts with the stdio servers of the launch plan (supervisor/prelaunch.py), spawned before
the web framework, the SDK and the database layer are imported: they boot on another core while
mcpd imports the rest of itself (cold start, docs/performance.md). So the heavy imports are in the
functions below, not at the top.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import uvloop
from pydantic import ValidationError

from mcpctl.core.crypto import Passwords, SecretCipher, generate_password
from mcpctl.core.errors import InvalidError
from mcpctl.mcpd import logs
from mcpctl.mcpd.secretkey import existing_secret_key
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.supervisor.prelaunch import PLAN_FILE, Prelaunched, remove_plan

logger = logging.getLogger(__name__)


def _settings(given: dict[str, Any]) -> Settings:
    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except (ValidationError, ValueError) as exc:
        click.echo(f"error: invalid settings: {exc}", err=True)
        sys.exit(2)


def _prepare_data_dir(settings: Settings) -> None:
    """Owner-only files (the database, its -wal/-shm, everything mcpd writes) in a usable data dir;
    exit 1 with one line naming the path otherwise."""
    from mcpctl.mcpd import datadir

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
    os.umask(0o077)  # before anything is spawned or written
    logs.configure(settings.log_level, json_lines=settings.log_json)
    # the event loop in C (uvicorn's loop="uvloop"), made here: the launch plan is spawned in it
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    # SIGTERM before serving ends this task, so that what was spawned ahead is stopped too, not left
    # to the next start (its groups' stragglers); once serving, it is uvicorn's graceful shutdown
    # (`stop`: also a SIGTERM that came while uvicorn was not yet handling it).
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    terminated = asyncio.Event()
    serving = False

    def on_sigterm() -> None:
        terminated.set()
        if not serving:
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    prelaunched: Prelaunched | None = None
    try:
        prelaunched = await _prelaunch(settings)
        _prepare_data_dir(settings)
        # after the spawn: the app and the server import what serving needs (~1 s of CPU)
        from mcpctl.mcpd.server import serve

        serving = True
        await serve(settings, prelaunched, stop=terminated)
    except asyncio.CancelledError:
        if not terminated.is_set():  # Ctrl-C: asyncio.Runner makes it KeyboardInterrupt
            raise
        main.uncancel()
        logger.info("mcpd stopped (SIGTERM) while starting")
    finally:  # what no replica took, whatever ended serving (the supervisor ends what it took)
        loop.remove_signal_handler(signal.SIGTERM)
        if prelaunched is not None:
            await prelaunched.close_rest()


async def _prelaunch(settings: Settings) -> Prelaunched | None:
    """The stdio instances of the launch plan, spawned now; None when there is none to follow: not
    supervising, a shared database (PostgreSQL: leases decide), no secret key yet (first start), or
    a data dir it cannot read (`_prepare_data_dir` then says why)."""
    database = settings.resolved_database_url
    if not database.startswith("sqlite"):
        return None
    try:
        if not settings.supervise:  # the API still changes servers: an old plan would go stale
            remove_plan(settings.data_dir)
            return None
        if not (settings.data_dir / PLAN_FILE).exists():
            return None
        key = existing_secret_key(settings)
        if key is None:
            return None
        return await Prelaunched.launch(
            settings.data_dir, database, SecretCipher(key), grace_seconds=settings.stop_grace_seconds
        )
    except Exception:  # boundary: spawning ahead only saves time; the supervisor spawns anyway
        logger.warning("could not spawn the launch plan ahead of startup", exc_info=True)
        return None


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
    from mcpctl.mcpd.bootstrap import reset_admin
    from mcpctl.storage.database import Database

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
