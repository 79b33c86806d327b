"""`mcpctl delete NOUN NAME… [--force]`."""

from __future__ import annotations

import click

from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import ServerError
from mcpctl.cli.nouns import complete_noun, object_path, ref, resolve_noun


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Delete even if in use (a server is detached from its projects).")
@pass_state
def delete(state: AppState, /, noun: str, names: tuple[str, ...], force: bool) -> None:
    """Delete the named objects; each failure is reported and the others still deleted."""
    info = resolve_noun(noun, writable=True)
    paths = [object_path(info, name) for name in names]
    client = state.client()
    params = {"force": "true"} if force else None
    failed = False
    for name, path in zip(names, paths, strict=True):
        try:
            client.request("DELETE", path, params=params)
        except ServerError as exc:
            if len(names) == 1:
                raise
            click.echo(exc.format(), err=True)
            failed = True
            continue
        click.echo(f"{ref(info, name)} deleted")
    if failed:
        raise click.exceptions.Exit(1)
