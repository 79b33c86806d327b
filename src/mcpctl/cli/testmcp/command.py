"""`mcpctl test mcp URL`: validate any Streamable-HTTP MCP endpoint (DESIGN §9).

Exit 0 when every check passes, 1 on a transport or auth failure, 2 on a contract failure (and on a
usage mistake, found before anything is sent).
"""

from __future__ import annotations

import os

import click

from mcpctl.cli.testmcp.options import (
    ERAS,
    MAX_REPEAT,
    OUTPUTS,
    Options,
    parse_arguments,
    parse_expect_tools,
    parse_headers,
    parse_repeat,
    parse_timeout,
    parse_token,
    parse_tool,
    parse_url,
)
from mcpctl.cli.testmcp.render import render


@click.group()
def test() -> None:
    """Check an endpoint from the outside: `test mcp URL`."""


@test.command("mcp")
@click.argument("url")
@click.option("--token", metavar="T", envvar="MCPCTL_TOKEN", help="Bearer token (default: $MCPCTL_TOKEN).")
@click.option(
    "--header", "headers", metavar="'K: V'", multiple=True, help="Extra request header (repeatable)."
)
@click.option("--tool", metavar="NAME", help="Call this tool.")
@click.option(
    "--args",
    "args_json",
    metavar="JSON",
    help="The call's arguments, a JSON object (default: made up from the tool's input schema).",
)
@click.option("--expect-tools", metavar="A,B", help="Tools that must be listed.")
@click.option("--timeout", type=float, metavar="S", help="Seconds each step may take (default 10).")
@click.option(
    "--era", type=click.Choice(ERAS), default="auto", show_default=True, help="Protocol era to use."
)
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="text", show_default=True)
@click.option("--no-health", is_flag=True, help="Skip GET <base>/healthz.")
@click.option(
    "--repeat",
    type=int,
    metavar="N",
    help=f"Time N calls (of --tool, else tools/list): p50/p95/max (1-{MAX_REPEAT}).",
)
@click.pass_context
def mcp(
    ctx: click.Context,
    /,
    url: str,
    token: str | None,
    headers: tuple[str, ...],
    tool: str | None,
    args_json: str | None,
    expect_tools: str | None,
    timeout: float | None,
    era: str,
    output: str,
    no_health: bool,
    repeat: int | None,
) -> None:
    """Validate the MCP endpoint at URL: health, connect (initialize or server/discover), sessions,
    tools/list, expected tools, a tool call, auth (401 without the token), latency.

    Exit 0 PASS, 1 transport or auth failure, 2 contract failure."""
    token = parse_token(token)
    options = Options(
        url=parse_url(url),
        token=token,
        headers=parse_headers(headers, token=token),
        tool=parse_tool(tool),
        arguments=parse_arguments(args_json, tool=tool),
        expect_tools=parse_expect_tools(expect_tools),
        timeout=parse_timeout(timeout),
        era=era,
        health=not no_health,
        repeat=parse_repeat(repeat),
    )
    # Imported here: the SDK takes most of a second to import, which no other command should pay.
    import anyio

    from mcpctl.cli.testmcp.runner import run_checks

    try:
        report = anyio.run(run_checks, options)
    except KeyboardInterrupt:
        raise click.Abort() from None
    click.echo(render(report, output), color=False if os.environ.get("NO_COLOR") else None)
    ctx.exit(report.exit_code)
