"""`mcpctl status`: which mcpd, whether it answers, and who you are there."""

from __future__ import annotations

from typing import Any

import click

from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import ServerError


def _who(me: Any) -> str:
    """A readable identity from GET /api/v1/auth/me (`{user, groups, bindings}`)."""
    if not isinstance(me, dict):
        return "unknown"
    user = me.get("user")
    email = None
    if isinstance(user, dict):
        spec = user.get("spec")
        metadata = user.get("metadata")
        email = (
            (spec.get("email") if isinstance(spec, dict) else None)
            or user.get("email")
            or (metadata.get("name") if isinstance(metadata, dict) else None)
        )
    elif isinstance(user, str):
        email = user
    groups = me.get("groups")
    names = [_group_name(g) for g in (groups if isinstance(groups, list) else [])]
    names = [name for name in names if name]
    text = str(email or "unknown")
    return f"{text} (groups: {', '.join(names)})" if names else text


def _group_name(group: Any) -> str:
    if isinstance(group, str):
        return group
    if isinstance(group, dict):
        metadata = group.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else group.get("name")
        return str(name or "")
    return ""


@click.command()
@pass_state
def status(state: AppState, /) -> None:
    """Show the mcpd URL, whether it is reachable, and who you are logged in as."""
    resolved = state.resolved()
    client = state.client()
    reachable, note = client.healthy()
    click.echo(f"mcpd:  {resolved.mcpd_url} ({'reachable' if reachable else 'unreachable: ' + note})")
    if not reachable:
        click.echo(f"user:  {'unknown' if resolved.token else 'not logged in'}")
        raise click.exceptions.Exit(1)
    if resolved.token is None:
        click.echo("user:  not logged in")
        return
    try:
        me = client.json("GET", "/api/v1/auth/me")
    except ServerError as exc:
        if exc.status != 401:
            raise
        click.echo("user:  not logged in (the session expired or was revoked; run: mcpctl login)")
        return
    source = " (token from MCPCTL_TOKEN)" if resolved.token_source == "env" else ""
    click.echo(f"user:  {_who(me)}{source}")
