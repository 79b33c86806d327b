"""`mcpctl revoke mcptoken NAME… -p PROJECT`: end tokens now, keeping their record (soft delete)."""

from __future__ import annotations

import click

from mcpctl.cli.batch import for_each_name
from mcpctl.cli.completion import complete_name, complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import usage_error
from mcpctl.cli.mcptokens import require_project, token_path
from mcpctl.cli.nouns import MCPTOKEN, complete_noun, resolve_noun


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("names", nargs=-1, required=True, shell_complete=complete_name)
@click.option("-p", "--project", shell_complete=complete_project, help="The project the tokens belong to.")
@pass_state
def revoke(state: AppState, /, noun: str, names: tuple[str, ...], project: str | None) -> None:
    """Revoke McpTokens: they stop working at once and their RBAC definition is removed; they stay
    listed as `revoked` (use `delete` to remove them). Each failure is reported, the others revoked.
    """
    info = resolve_noun(noun)
    if info.kind != MCPTOKEN:
        raise usage_error(f"only mcptokens can be revoked, not {info.plural}")
    paths = [token_path(require_project(project), name, "revoke") for name in names]
    client = state.client()
    for_each_name(info, names, paths, "revoked", lambda path: client.request("POST", path))
