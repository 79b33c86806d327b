"""Where `tools` and `call` go and with which McpToken.

URL: `<mcpd url>/projects/<P>/mcp` (the mcpd the CLI resolves), or `--url` — a full endpoint URL, or a
base URL such as a `mcplocal serve` (`http://127.0.0.1:3200`) to which `/projects/<P>/mcp` is added.

Token: `--token`, else `$MCPCTL_TOKEN` when it is an McpToken, else one for the login (a non-token
`$MCPCTL_TOKEN` is a login too): `mcpctl-cli-<host>-<user>`, kept in `~/.mcpctl/tokens/<mcpd>/<P>/`
and reused while it works (localtokens). It is minted `--rbac empty`, so it reaches exactly what the
user may run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import click

from mcpctl.cli.context import AppState
from mcpctl.cli.errors import NotLoggedInError, usage_error
from mcpctl.cli.localtokens import local_token_name, provision, whoami
from mcpctl.cli.testmcp.options import parse_token, parse_url
from mcpctl.cli.timefmt import format_timestamp
from mcpctl.core.tokens import looks_like_token, parse_ttl

TOKEN_PREFIX = "mcpctl-cli"
TOKEN_TTL = "12h"


@dataclass(frozen=True)
class Access:
    """The endpoint and the bearer; `mcpd_url` is set when the endpoint is mcpd's own (so a failure
    to connect reads as mcpd being unreachable)."""

    url: str
    token: str
    mcpd_url: str | None


def endpoint_url(project: str, *, mcpd_url: str, url_flag: str | None) -> str:
    """The project endpoint: mcpd's, or `--url` as given, or `--url`'s base plus the project path."""
    path = f"/projects/{quote(project, safe='')}/mcp"
    if url_flag is None:
        return mcpd_url.rstrip("/") + path
    url = parse_url(url_flag)
    return url.rstrip("/") + path if urlsplit(url).path in ("", "/") else url


def resolve_access(
    state: AppState,
    project: str,
    *,
    url_flag: str | None,
    token_flag: str | None,
    environ: Mapping[str, str] | None = None,
) -> Access:
    """Check the flags (usage errors first), then find or mint the token."""
    env = os.environ if environ is None else environ
    token = parse_token(token_flag)
    if token is not None and not looks_like_token(token):
        raise usage_error("--token: not an McpToken (mcpctl_pat_…); leave it out to use your login")
    resolved = state.resolved()
    url = endpoint_url(project, mcpd_url=resolved.mcpd_url, url_flag=url_flag)
    mcpd_url = resolved.mcpd_url if url_flag is None else None
    if token is None and looks_like_token(env.get("MCPCTL_TOKEN", "")):
        token = env["MCPCTL_TOKEN"]
    if token is None:
        token = _login_token(state, project)
    return Access(url, token, mcpd_url)


def _login_token(state: AppState, project: str) -> str:
    client = state.client()
    if not client.has_token:
        raise NotLoggedInError()
    login = whoami(client)
    name = local_token_name(TOKEN_PREFIX, login.name)
    local = provision(
        client,
        state.config_path,
        project,
        name,
        login=login,
        ttl=TOKEN_TTL,
        description="mcpctl tools/call (the CLI user's reach)",
    )
    if local.outcome != "reused":
        when = parse_ttl(TOKEN_TTL, now=datetime.now(UTC))
        expires = format_timestamp(when.isoformat()) if when is not None else "never"
        what = f"project {project}, expires {expires}"
        click.echo(f"mcptoken/{name} created for mcpctl tools/call ({what})", err=True)
    return local.token
