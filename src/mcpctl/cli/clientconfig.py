"""`mcpctl config claude -p P …`: mint a token for an MCP client and hand the client its config —
printed, or merged into the client's config file with `--write`."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import click

from mcpctl.cli.clientfiles import (
    CLIENTS,
    ConfigFile,
    default_path,
    merged,
    read_config_file,
    server_entries,
    snippet,
    write_config_file,
)
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import ServerError, usage_error
from mcpctl.cli.mcptokens import SHOWN_ONCE, announce_created, check_ttl_flag, create_body, post_token
from mcpctl.core.tokens import slug


def default_token_name(client: str, hostname: str | None = None) -> str:
    """`<client>-<hostname-slug>`, kept a DNS label (at most 63 characters)."""
    host = slug((hostname or socket.gethostname()).split(".")[0])
    return f"{client}-{host}"[:63].rstrip("-")


@click.group("config")
def config() -> None:
    """Configure MCP clients to reach a project through mcpd."""


@config.command("claude")
@click.option("-p", "--project", required=True, help="The project the client should reach.")
@click.option(
    "--client",
    type=click.Choice(list(CLIENTS)),
    default="claude-desktop",
    show_default=True,
    help="Which client's configuration to produce.",
)
@click.option("--name", "token_name", metavar="TOKEN_NAME", help="Token name (default: <client>-<hostname>).")
@click.option("--ttl", metavar="TTL", help="Token lifetime: never (default), 30d, … or an ISO-8601 date.")
@click.option(
    "--config-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The client config file to merge into (default: the client's usual place).",
)
@click.option("--write", is_flag=True, help="Merge the server entry into the client's config file.")
@click.option(
    "--force", is_flag=True, help="Revoke an active token of this name first (re-provision the client)."
)
@pass_state
def claude(
    state: AppState,
    /,
    project: str,
    client: str,
    token_name: str | None,
    ttl: str | None,
    config_path: Path | None,
    write: bool,
    force: bool,
) -> None:
    """Create an McpToken for PROJECT (written to a 0600 file by mcpd) and configure a client with it.

    Without --write, prints the client's snippet (JSON; a command line for claude-code). With
    --write, merges the server entry into the client's config file: other entries are kept, the old
    file is saved as <file>.bak, the new one is written atomically.
    """
    info = CLIENTS[client]
    name = token_name or default_token_name(client)
    check_ttl_flag(ttl)
    if config_path is not None and not write:
        raise usage_error("--config-path applies only with --write")
    current: ConfigFile | None = None
    if write:  # refuse a broken config file before minting a token for it
        path = (config_path or default_path(client)).expanduser().absolute()
        current = read_config_file(path, info.section)
    body = create_body(
        name, project, rbac="empty", ttl=ttl, description=f"{client} (mcpctl config claude)", write_file=True
    )
    try:
        answer = post_token(state.client(), body, replace=force)
    except ServerError as exc:
        if exc.code == "already_exists":
            exc.message += " (choose another --name, or replace it with --force)"
        raise
    announce_created(answer, name, project, show_token=False)
    client_config: Any = answer.get("clientConfig")
    if current is None:
        value = snippet(info, client_config)
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        click.echo(text)
        if str(answer["token"]) in text:
            click.echo(f"This snippet holds the token. {SHOWN_ONCE}", err=True)
        return
    entries = server_entries(info, client_config, project)
    backup = write_config_file(current, merged(current.data, info.section, entries))
    note = f" (backup: {backup})" if backup is not None else ""
    click.echo(f"wrote {', '.join(entries)} to {current.path}{note}")
