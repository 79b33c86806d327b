"""`mcpctl create mcptoken NAME -p P …`: mint a project-scoped bearer token and show it once."""

from __future__ import annotations

import click

from mcpctl.cli.completion import complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.create import create
from mcpctl.cli.errors import usage_error
from mcpctl.cli.mcptokens import (
    announce_created,
    check_ttl_flag,
    create_body,
    parse_bind_flags,
    post_token,
)
from mcpctl.cli.printers import format_response


@create.command("mcptoken")
@click.argument("name")
@click.option(
    "-p", "--project", required=True, help="The project the token is for.", shell_complete=complete_project
)
@click.option(
    "--rbac",
    type=click.Choice(["empty", "clone"]),
    help="empty (default): only the project's MCP endpoint; clone: a snapshot of your bindings.",
)
@click.option(
    "--bind",
    "binds",
    multiple=True,
    metavar="BINDING",
    help="role:<role>,resource:<res|*>[,name:<n>] or action:<op> (repeatable; each one you hold).",
)
@click.option("--ttl", metavar="TTL", help="never (default), 30d, 12h, … or an ISO-8601 date/time.")
@click.option("--description", help="Free-text description.")
@click.option("--write-file", is_flag=True, help="Also have mcpd write the token to a 0600 file.")
@click.option("--force", is_flag=True, help="Revoke an active token of this name and create a new one.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml"]),
    help="Print the whole response (token, tokenPath, clientConfig, mcpToken).",
)
@pass_state
def create_mcptoken(
    state: AppState,
    /,
    name: str,
    project: str,
    rbac: str | None,
    binds: tuple[str, ...],
    ttl: str | None,
    description: str | None,
    write_file: bool,
    force: bool,
    output: str | None,
) -> None:
    """Create an McpToken for one project. The raw token is printed once, alone on stdout
    (TOKEN=$(mcpctl create mcptoken …) captures it); it cannot be shown again.
    """
    if binds and rbac is not None:
        raise usage_error(f"--bind gives the token's bindings; it cannot be combined with --rbac {rbac}")
    bindings = parse_bind_flags(binds) if binds else None
    check_ttl_flag(ttl)
    body = create_body(
        name,
        project,
        rbac="bind" if binds else rbac or "empty",
        bindings=bindings,
        ttl=ttl,
        description=description,
        write_file=write_file,
    )
    answer = post_token(state.client(), body, replace=force)
    if output is not None:
        click.echo(format_response(answer, output))
    else:
        announce_created(answer, name, project)
