"""`mcpctl completion bash|zsh|fish`: print the shell completion script."""

from __future__ import annotations

import click
from click.shell_completion import BashComplete, FishComplete, ShellComplete, ZshComplete

_SHELLS: dict[str, type[ShellComplete]] = {"bash": BashComplete, "zsh": ZshComplete, "fish": FishComplete}


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
