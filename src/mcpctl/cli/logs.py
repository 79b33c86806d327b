"""`mcpctl logs instance NAME [--tail N]`: a stdio instance's stderr (operation `logs`)."""

from __future__ import annotations

from typing import Any

import click

from mcpctl.cli.client import api_path
from mcpctl.cli.completion import complete_name
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import CliError, usage_error
from mcpctl.cli.nouns import complete_noun, resolve_noun


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("name", shell_complete=complete_name)
@click.option("--tail", type=click.IntRange(0, 100_000), help="Only the last N lines.")
@pass_state
def logs(state: AppState, /, noun: str, name: str, tail: int | None) -> None:
    """Print an instance's stderr (the last lines mcpd keeps per instance): `logs instance NAME`."""
    info = resolve_noun(noun)
    if info.kind != "Instance":
        raise usage_error(f"logs applies only to instances, not {info.plural}")
    params = {"tail": str(tail)} if tail is not None else {}
    body: Any = state.client().json("GET", api_path("instances", name, "logs"), params=params)
    lines = body.get("lines") if isinstance(body, dict) else None
    if not isinstance(lines, list):
        raise CliError("mcpd answered a logs request without 'lines'")
    for line in lines:
        click.echo(str(line))
