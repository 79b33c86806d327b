"""`mcpctl tools -p P` and `mcpctl call -p P TOOL [key=value…]`: through the project's real MCP
endpoint, as the given token (or the logged-in user) sees it. Usage is checked before anything is
sent (exit 2); endpoint failures exit 1, and so does a tool result with `isError`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mcpctl.cli.completion import complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import CliError
from mcpctl.cli.mcpcall.access import resolve_access
from mcpctl.cli.mcpcall.arguments import (
    build_arguments,
    check_required,
    parse_json_arguments,
    split_assignments,
)
from mcpctl.cli.mcpcall.show import CALL_OUTPUTS, TOOL_OUTPUTS, dump, format_tools, result_text
from mcpctl.cli.testmcp.options import ERAS, parse_timeout

if TYPE_CHECKING:
    from mcpctl.cli.mcpcall.session import Conversation

DEFAULT_TIMEOUT = 30.0
T = TypeVar("T")


@dataclass(frozen=True)
class EndpointFlags:
    """The flags both commands share: which project endpoint, which token, which era, how long."""

    project: str
    url: str | None
    token: str | None
    era: str
    timeout: float | None


_FLAGS = (
    click.option(
        "-p",
        "--project",
        required=True,
        help="The project whose endpoint to use.",
        shell_complete=complete_project,
    ),
    click.option(
        "--url",
        metavar="URL",
        help="The endpoint (default: <mcpd url>/projects/PROJECT/mcp); a base URL such as a `mcplocal "
        "serve` gets /projects/PROJECT/mcp added.",
    ),
    click.option(
        "--token",
        metavar="T",
        help="An McpToken (default: $MCPCTL_TOKEN if it is one, else a token minted for your login).",
    ),
    click.option(
        "--era", type=click.Choice(ERAS), default="auto", show_default=True, help="Protocol era to use."
    ),
    click.option(
        "--timeout",
        type=float,
        metavar="S",
        help=f"Seconds each step may take (default {DEFAULT_TIMEOUT:g}).",
    ),
)


def endpoint_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Add the shared flags to `command`, which receives them as one `flags: EndpointFlags`."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        project: str,
        url: str | None,
        token: str | None,
        era: str,
        timeout: float | None,
        **rest: Any,
    ) -> None:
        command(*args, flags=EndpointFlags(project, url, token, era, timeout), **rest)

    for option in reversed(_FLAGS):
        wrapper = option(wrapper)
    return wrapper


def _run(state: AppState, flags: EndpointFlags, work: Callable[[Conversation], Awaitable[T]]) -> T:
    seconds = parse_timeout(DEFAULT_TIMEOUT if flags.timeout is None else flags.timeout)
    access = resolve_access(state, flags.project, url_flag=flags.url, token_flag=flags.token)
    # Imported here: the SDK takes most of a second to import, which other commands should not pay.
    import anyio

    from mcpctl.cli.mcpcall.session import Target, conversation

    async def main() -> T:
        async with conversation(Target(access, flags.era, seconds)) as talk:
            return await work(talk)

    try:
        return anyio.run(main)
    except KeyboardInterrupt:
        raise click.Abort() from None


@click.command("tools")
@endpoint_flags
@click.option("-o", "--output", type=click.Choice(TOOL_OUTPUTS), default="table", show_default=True)
@pass_state
def tools(state: AppState, /, flags: EndpointFlags, output: str) -> None:
    """List the tools PROJECT's MCP endpoint offers (every page), as the token or your login sees them.

    Table: NAME DESCRIPTION; wide adds PARAMETERS (required ones starred); json/yaml: the tool objects."""

    async def work(talk: Conversation) -> list[dict[str, Any]]:
        return await talk.tools()

    listed = _run(state, flags, work)
    text = format_tools(listed, output)
    if text:
        click.echo(text)
    elif output in ("table", "wide"):
        click.echo(f"No tools found in project {flags.project} (for this token).", err=True)


@click.command("call")
@click.argument("tool")
@click.argument("assignments", metavar="[KEY=VALUE]...", nargs=-1)
@click.option("--json", "json_args", metavar="ARGS", help="The arguments as a JSON object (KEY=VALUE wins).")
@endpoint_flags
@click.option("-o", "--output", type=click.Choice(CALL_OUTPUTS), default="text", show_default=True)
@pass_state
def call(
    state: AppState,
    /,
    flags: EndpointFlags,
    tool: str,
    assignments: tuple[str, ...],
    json_args: str | None,
    output: str,
) -> None:
    """Call TOOL of PROJECT's MCP endpoint and print its result.

    KEY=VALUE values are read as the tool's input schema says (numbers, booleans, arrays and objects
    as JSON; strings as typed); KEY=@FILE reads a file. An isError result goes to stderr, exit 1."""
    base = parse_json_arguments(json_args)
    pairs = split_assignments(assignments)

    async def work(talk: Conversation) -> dict[str, Any]:
        offered = {t["name"]: t for t in await talk.tools()}
        if tool not in offered:
            raise CliError(
                f"tool {tool!r} is not offered by project {flags.project} to this token "
                f"(see: mcpctl tools -p {flags.project})"
            )
        schema = offered[tool].get("inputSchema") or {}
        arguments = build_arguments(schema, pairs, base)
        check_required(schema, arguments, f"see: mcpctl tools -p {flags.project} -o wide")
        return await talk.call(tool, arguments)

    result = _run(state, flags, work)
    failed = bool(result.get("isError"))
    if output != "text":
        click.echo(dump(result, output))
    elif failed:
        click.echo(result_text(result) or "the tool reported an error", err=True)
    else:
        text = result_text(result)
        if text:
            click.echo(text)
    if failed:
        click.get_current_context().exit(1)
