"""`mcpctl login` and `mcpctl logout`: get a session bearer from mcpd and keep it in the config file."""

from __future__ import annotations

import sys
from typing import Any

import click

from mcpctl.cli.config import save_config
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.create import read_password_stdin
from mcpctl.cli.errors import CliError, ServerError, usage_error


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _credentials(email: str | None, password_stdin: bool, remembered: str | None) -> tuple[str, str]:
    """Email and password from flags, stdin, or a prompt when a terminal is attached."""
    password = read_password_stdin() if password_stdin else None
    interactive = _stdin_is_tty() and not password_stdin
    if email is None:
        if not interactive:
            if remembered is None:
                raise usage_error("--email is required when stdin is not a terminal")
            email = remembered
        else:
            email = click.prompt("Email", default=remembered)
    if password is None:
        if not interactive:
            raise usage_error("no password: use --password-stdin, or run in a terminal to be prompted")
        password = click.prompt("Password", hide_input=True)
    return str(email), password


@click.command()
@click.option("--mcpd-url", "url", metavar="URL", help="mcpd to log in to (remembered).")
@click.option("--email", help="Your e-mail address.")
@click.option("--password-stdin", is_flag=True, help="Read the password (one line) from stdin.")
@pass_state
def login(state: AppState, /, url: str | None, email: str | None, password_stdin: bool) -> None:
    """Log in to mcpd and remember the session in ~/.mcpctl/config.yaml."""
    config = state.config()
    email, password = _credentials(email, password_stdin, config.email)
    client = state.client(url, anonymous=True)
    body: Any = client.json(
        "POST", "/api/v1/auth/login", json={"email": email, "password": password}, auth=False
    )
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise CliError("mcpd answered the login without a token")
    config.mcpd_url, config.token, config.email = client.base_url, token, email
    save_config(state.config_path, config)
    click.echo(f"Logged in as {email}")


@click.command()
@pass_state
def logout(state: AppState, /) -> None:
    """End the session on mcpd and forget the token."""
    config = state.config()
    resolved = state.resolved()
    if resolved.token is None:
        click.echo("Not logged in.")
        return
    try:
        state.client().request("POST", "/api/v1/auth/logout")
    except ServerError as exc:
        if exc.status != 401:  # an expired session is as good as a closed one
            raise
    if config.token is not None:
        config.token = None
        save_config(state.config_path, config)
    click.echo("Logged out")
    if resolved.token_source == "env":
        click.echo("note: MCPCTL_TOKEN is still set in your environment", err=True)
