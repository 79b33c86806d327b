"""`mcpctl create server NAME --transport stdio|http …` (optionally adding it to a project)."""

from __future__ import annotations

from typing import Any

import click

from mcpctl.cli.client import api_path
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.create import common_options, create, parse_pairs, parse_secret_refs, submit
from mcpctl.cli.errors import usage_error

_STDIO_ONLY = {
    "command": "--command",
    "args": "--arg",
    "env": "--env",
    "env_secret": "--env-secret",
    "replicas": "--replicas",
    "cwd": "--cwd",
}
_HTTP_ONLY = {"url": "--url", "headers": "--header", "header_secret": "--header-secret"}


def _server_spec(transport: str, flags: dict[str, Any]) -> dict[str, Any]:
    misplaced = _HTTP_ONLY if transport == "stdio" else _STDIO_ONLY
    for key, flag in misplaced.items():
        if flags[key]:
            raise usage_error(f"{flag} does not apply to --transport {transport}")
    spec: dict[str, Any] = {"transport": transport}
    pairs: tuple[tuple[str, Any], ...]
    if transport == "stdio":
        env: dict[str, Any] = parse_pairs(flags["env"], "--env")
        for key, value in parse_secret_refs(flags["env_secret"], "--env-secret").items():
            if key in env:
                raise usage_error(f"--env-secret: {key!r} is also given with --env")
            env[key] = value
        pairs = (
            ("command", flags["command"]),
            ("args", list(flags["args"])),
            ("env", env),
            ("cwd", flags["cwd"]),
            ("replicas", flags["replicas"]),
        )
    else:
        headers: dict[str, Any] = parse_pairs(flags["headers"], "--header", sep=":")
        for key, value in parse_secret_refs(flags["header_secret"], "--header-secret").items():
            if key in headers:
                raise usage_error(f"--header-secret: {key!r} is also given with --header")
            headers[key] = value
        pairs = (("url", flags["url"]), ("headers", headers))
    spec.update((key, value) for key, value in pairs if value not in (None, [], {}))
    return spec


@create.command("server")
@click.argument("name")
@click.option("--transport", type=click.Choice(["stdio", "http"]), required=True)
@click.option("--command", help="stdio: the program to run.")
@click.option("--arg", "args", multiple=True, metavar="ARG", help="stdio: an argument (repeatable).")
@click.option("--env", multiple=True, metavar="KEY=VALUE", help="stdio: an environment variable.")
@click.option(
    "--env-secret",
    multiple=True,
    metavar="KEY=SECRET:KEY",
    help="stdio: an environment variable taken from a secret's key.",
)
@click.option("--cwd", help="stdio: working directory.")
@click.option("--replicas", type=int, help="stdio: number of instances (default 1).")
@click.option("--url", help="http: the upstream MCP endpoint.")
@click.option("--header", "headers", multiple=True, metavar="'KEY: VALUE'", help="http: a request header.")
@click.option(
    "--header-secret",
    multiple=True,
    metavar="KEY=SECRET:KEY",
    help="http: a request header taken from a secret's key.",
)
@click.option("--project", metavar="PROJECT", help="Also append the server to this project.")
@common_options
@pass_state
def create_server(state: AppState, /, name: str, transport: str, project: str | None, **flags: Any) -> None:
    """Register an upstream MCP server: a supervised stdio command or a remote HTTP URL."""
    opts = {key: flags.pop(key) for key in ("labels", "description", "dry_run", "force", "output")}
    spec = _server_spec(transport, flags)
    client = state.client()
    servers: list[str] = []
    if project is not None:  # check the project first, so a typo creates nothing
        current = client.json("GET", api_path("projects", project))
        servers = list((current.get("spec") or {}).get("servers") or [])
    submit(state, "Server", name, spec, opts)
    if project is None or opts["dry_run"] or name in servers:
        return
    client.json("PATCH", api_path("projects", project), json={"spec": {"servers": [*servers, name]}})
    if not opts["output"]:
        click.echo(f"project/{project} patched")
