"""Shell completion (DESIGN §9): `mcpctl completion bash|zsh|fish` prints the script, and the
`shell_complete` callbacks complete object and project names by asking mcpd as the user.

A completion is typed at a prompt: it asks once, with a short timeout, and says nothing at all when
anything goes wrong (no mcpd, not logged in, no permission): the shell then offers no names.
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import BashComplete, CompletionItem, FishComplete, ShellComplete, ZshComplete

from mcpctl.cli.client import ApiClient
from mcpctl.cli.context import AppState
from mcpctl.cli.mcptokens import tokens_path
from mcpctl.cli.nouns import AUDIT, MCPTOKEN, collection_path, is_served
from mcpctl.core.kinds import kind_for_noun

_SHELLS: dict[str, type[ShellComplete]] = {"bash": BashComplete, "zsh": ZshComplete, "fish": FishComplete}
# per network step (connect, read): a completion answers within about two seconds or not at all
TIMEOUT_SECONDS = 1.0


@click.command()
@click.argument("shell", type=click.Choice(sorted(_SHELLS)))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  source <(mcpctl completion bash)
    zsh:   source <(mcpctl completion zsh)
    fish:  mcpctl completion fish | source
    """
    root = ctx.find_root()
    script = _SHELLS[shell](root.command, {}, "mcpctl", "_MCPCTL_COMPLETE").source()
    click.echo(script)


def complete_name(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Names of the objects of the command's NOUN (within `-p PROJECT` when given) that the user
    may see, minus the names already on the line."""
    info = kind_for_noun(str(ctx.params.get("noun") or ""))
    if info is None or not is_served(info) or info.kind == AUDIT:
        return []
    given_project = ctx.params.get("project")
    project = given_project if isinstance(given_project, str) else None
    path = tokens_path(project) if info.kind == MCPTOKEN else collection_path(info, project)
    given = ctx.params.get(param.name or "")
    taken = set(given) if isinstance(given, tuple) else set()
    return [CompletionItem(name) for name in _names(ctx, path, incomplete) if name not in taken]


def complete_project(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Project names the user may see, for `-p/--project`."""
    info = kind_for_noun("projects")
    assert info is not None
    return [CompletionItem(name) for name in _names(ctx, collection_path(info), incomplete)]


def _names(ctx: click.Context, path: str, incomplete: str) -> list[str]:
    """The `metadata.name`s of the list at `path` that start with `incomplete`; [] on any failure."""
    try:
        body = _ask(ctx, path)
        names = [str(item["metadata"]["name"]) for item in body["items"]]
    except Exception:  # completion must never print a traceback into the user's prompt
        return []
    return sorted({name for name in names if name.startswith(incomplete)})


def _ask(ctx: click.Context, path: str) -> Any:
    """GET `path` as the user (flag > env > config file, as every command), with a short timeout."""
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, AppState) else AppState(root.params.get("mcpd_url"))
    resolved = state.resolved()
    if not resolved.token:
        return {"items": []}
    client = ApiClient(resolved.mcpd_url, resolved.token, transport=state.transport, timeout=TIMEOUT_SECONDS)
    try:
        return client.json("GET", path)
    finally:
        client.close()
