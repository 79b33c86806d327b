"""`mcpctl config claude -p P …`: configure an MCP client on this machine (DESIGN §4 Provisioning).

The token lives in this user's `~/.mcpctl/tokens/<mcpd>/<project>/<name>` (0600, see localtokens: reused
while it works, `--force` rotates it). The client's entry refers to it — Claude Desktop through
`mcplocal stdio`'s token file, Claude Code and Cursor through an environment variable, VS Code
through a secret input — so no config file holds the raw token. Printed, or with `--write` merged
into the client's file; either way followed by what to do next.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from mcpctl.cli.clientfiles import (
    CLIENTS,
    INPUTS,
    Client,
    default_path,
    merged,
    read_config_file,
    write_config_file,
)
from mcpctl.cli.completion import complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import CliError, usage_error
from mcpctl.cli.localtokens import local_token_name, provision, token_file, whoami
from mcpctl.cli.mcptokens import check_ttl_flag
from mcpctl.core import clientconfig as cc


def mcplocal_command() -> str:
    """This machine's `mcplocal`, as an absolute path (Claude Desktop has no shell PATH)."""
    found = cc.installed_mcplocal()
    if found is None:
        raise CliError(
            "no mcplocal on this machine (looked beside this Python and on PATH); "
            "install mcpctl here (it provides mcplocal), or use --client claude-code|vscode|cursor"
        )
    return found


def client_file_content(client: Client, project: str, mcpd_url: str, token_file: Path) -> dict[str, Any]:
    """What `--write` merges into the client's file (and, but for claude-code, what is printed)."""
    key, url = cc.server_key(project), cc.mcp_url(mcpd_url, project)
    if client.name == "claude-desktop":
        entry = cc.claude_desktop_entry(
            project, mcpd_url=mcpd_url, command=mcplocal_command(), token_file=str(token_file)
        )
        return {client.section: {key: entry}}
    if client.name == "vscode":
        return {INPUTS: [cc.vscode_input(project)], client.section: {key: cc.vscode_entry(project, url)}}
    if client.name == "cursor":
        return {client.section: {key: cc.cursor_entry(project, url)}}
    return {client.section: {key: cc.claude_code_entry(project, url)}}


def next_step(client: Client, project: str, token_file: Path) -> list[str]:
    """How to hand the client its token, and start it."""
    export = f'export {cc.token_env_name(project)}="$(cat {shlex.quote(str(token_file))})"'
    if client.name == "claude-desktop":
        return ["next: restart Claude Desktop (it runs mcplocal stdio, which reads the token file)"]
    if client.name == "claude-code":
        return [
            f"next: {export}",
            "      then start `claude` in this directory and approve the project's server",
        ]
    if client.name == "cursor":
        return [f"next: {export}", "      in the environment Cursor starts from, then restart Cursor"]
    return [
        f"next: start the server {cc.server_key(project)} in VS Code; it asks for the token on first",
        f"      start (input {cc.token_input_id(project)}): paste the contents of {token_file}",
    ]


_OUTCOME = {
    "reused": "reused (it still works)",
    "created": "created",
    "rotated": "rotated (the old one is revoked)",
}


@click.group("config")
def config() -> None:
    """Configure MCP clients to reach a project through mcpd."""


@config.command("claude")
@click.option(
    "-p",
    "--project",
    required=True,
    help="The project the client should reach.",
    shell_complete=complete_project,
)
@click.option(
    "--client",
    type=click.Choice(list(CLIENTS)),
    default="claude-desktop",
    show_default=True,
    help="Which client's configuration to produce.",
)
@click.option(
    "--name", "token_name", metavar="TOKEN_NAME", help="Token name (default: <client>-<hostname>-<user>)."
)
@click.option("--ttl", metavar="TTL", help="Lifetime of a new token: never (default), 30d, … or an ISO date.")
@click.option(
    "--config-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The client config file to merge into (default: the client's usual place).",
)
@click.option("--write", is_flag=True, help="Merge the server entry into the client's config file.")
@click.option("--force", is_flag=True, help="Rotate the token: revoke the old one, mint a new one.")
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
    """Configure an MCP client on this machine to reach PROJECT, with a token of its own.

    The token is kept in ~/.mcpctl/tokens/MCPD/PROJECT/NAME (0600) and reused while it works; --force
    rotates it. No config file gets the raw token: Claude Desktop runs mcplocal with the token
    file, Claude Code and Cursor read an environment variable, VS Code asks for it once.

    Without --write, prints the client's snippet (a `claude mcp add` line for claude-code). With
    --write, merges it into the client's config file: other entries are kept, the old file is saved
    in ~/.mcpctl/backups/, the new one is written atomically.
    """
    info = CLIENTS[client]
    check_ttl_flag(ttl)
    if config_path is not None and not write:
        raise usage_error("--config-path applies only with --write")
    current = None
    if write:  # refuse a broken config file before minting a token for it
        current = read_config_file(
            (config_path or default_path(client)).expanduser().absolute(), info.section
        )
    api = state.client()
    login = whoami(api)
    name = token_name or local_token_name(client, login.name)
    # built first, so that a config that cannot run (no mcplocal here) gets no token
    content = client_file_content(
        info, project, state.resolved().mcpd_url, token_file(state.config_path, api.base_url, project, name)
    )
    local = provision(
        api,
        state.config_path,
        project,
        name,
        login=login,
        ttl=ttl,
        description=f"{client} (mcpctl config claude)",
        rotate=force,
    )

    def say(line: str) -> None:  # with the snippet on stdout, the rest goes to stderr
        click.echo(line, err=current is None)

    say(f"mcptoken/{name} {_OUTCOME[local.outcome]}: {local.path}")
    key = cc.server_key(project)
    if current is None:
        click.echo(_snippet_text(info, project, state.resolved().mcpd_url, content))
    elif (data := merged(current.data, content)) == current.data:
        say(f"{current.path} unchanged ({key} is up to date)")
    else:
        backup = write_config_file(
            current, data, info.new_file_mode, backup_dir=state.config_path.parent / "backups"
        )
        say(f"wrote {key} to {current.path}" + (f" (backup: {backup})" if backup is not None else ""))
        if current.original is not None and b"mcpctl_pat_" in current.original:
            say(
                f"warning: the old {current.path.name} held a raw McpToken (kept only in the backup); "
                f"revoke it: mcpctl get mcptokens -p {project}, then mcpctl revoke mcptoken NAME -p {project}"
            )
    for line in next_step(info, project, local.path):
        say(line)


def _snippet_text(info: Client, project: str, mcpd_url: str, content: dict[str, Any]) -> str:
    if info.name == "claude-code":
        return cc.claude_code_command(project, cc.mcp_url(mcpd_url, project))
    return json.dumps(content, indent=2, ensure_ascii=False)
