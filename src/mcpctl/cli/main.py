"""The `mcpctl` command: kubectl-style verbs over mcpd's REST API.

Every failure ends here as one stderr line and an exit code: 0 ok, 1 error, 2 usage.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from mcpctl.cli import create_mcptoken as _create_mcptoken  # noqa: F401  (registers `create mcptoken`)
from mcpctl.cli import create_server as _create_server  # noqa: F401  (registers `create server`)
from mcpctl.cli.apply import apply
from mcpctl.cli.clientconfig import config
from mcpctl.cli.completion import completion
from mcpctl.cli.context import AppState
from mcpctl.cli.create import create
from mcpctl.cli.delete import delete
from mcpctl.cli.describe import describe
from mcpctl.cli.errors import CliError
from mcpctl.cli.get import get
from mcpctl.cli.login import login, logout
from mcpctl.cli.logs import logs
from mcpctl.cli.mcpcall.commands import call, tools
from mcpctl.cli.patch import patch
from mcpctl.cli.revoke import revoke
from mcpctl.cli.status import status
from mcpctl.cli.testmcp.command import test


class _Root(click.Group):
    """Renders every error the kubectl way, both from `main()` and under click's CliRunner."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name or "mcpctl", complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                click.echo(f"See '{exc.ctx.command_path} --help' for usage.", err=True)
            sys.exit(2)
        except CliError as exc:
            click.echo(exc.format(), err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (e.g. `| head`): nothing left to say
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--mcpd-url",
    metavar="URL",
    envvar=None,
    help="mcpd to talk to (default: $MCPCTL_MCPD_URL, the config file, http://127.0.0.1:3000).",
)
@click.version_option(package_name="mcpctl", prog_name="mcpctl")
@click.pass_context
def cli(ctx: click.Context, mcpd_url: str | None) -> None:
    """mcpctl: kubectl for MCP servers. Manage mcpd's users, projects, servers, secrets, RBAC and
    McpTokens."""
    state = ctx.ensure_object(AppState)
    if mcpd_url is not None:
        state.mcpd_url_flag = mcpd_url
    ctx.call_on_close(state.close)


for _command in (
    login,
    logout,
    status,
    get,
    describe,
    create,
    delete,
    revoke,
    logs,
    patch,
    apply,
    config,
    completion,
    test,
    tools,
    call,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="mcpctl")
