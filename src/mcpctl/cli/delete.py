"""`mcpctl delete NOUN NAME… [--force]` (`-p PROJECT` for mcptokens)."""

from __future__ import annotations

import click

from mcpctl.cli.batch import for_each_name
from mcpctl.cli.completion import complete_name, complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import usage_error
from mcpctl.cli.mcptokens import require_project, token_path
from mcpctl.cli.nouns import MCPTOKEN, PROMPT, complete_noun, object_path, resolve_noun


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("names", nargs=-1, required=True, shell_complete=complete_name)
@click.option("--force", is_flag=True, help="Delete even if in use (a server is detached from its projects).")
@click.option(
    "-p",
    "--project",
    shell_complete=complete_project,
    help="McpTokens and prompts: the project they belong to.",
)
@pass_state
def delete(state: AppState, /, noun: str, names: tuple[str, ...], force: bool, project: str | None) -> None:
    """Delete the named objects; each failure is reported and the others still deleted.

    McpTokens are deleted for good (see `revoke` to keep a record): `delete mcptoken NAME… -p P`.
    Prompts are named within their project: `delete prompt NAME… -p P`.
    """
    info = resolve_noun(noun, writable=True)
    if info.kind == MCPTOKEN:
        in_project = require_project(project)
        paths = [token_path(in_project, name) for name in names]
    elif info.kind == PROMPT:
        paths = [object_path(info, name, project) for name in names]
    elif project is not None:
        raise usage_error(f"-p/--project applies only to mcptokens and prompts, not {info.plural}")
    else:
        paths = [object_path(info, name) for name in names]
    client = state.client()
    params = {"force": "true"} if force and info.kind != MCPTOKEN else None
    for_each_name(info, names, paths, "deleted", lambda path: client.request("DELETE", path, params=params))
