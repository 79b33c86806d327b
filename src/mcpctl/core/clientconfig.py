"""MCP client configuration for a project token (DESIGN §4 Provisioning): the snippets mcpd returns
with a new token, and the entries `mcpctl config claude` merges into a client's file on the client
machine. One builder for both, so the two cannot drift.

The rules: files people commit (`.mcp.json`, `.vscode/mcp.json`) and Cursor's user-wide file never
hold a raw token — they refer to an environment variable (`${MCPCTL_TOKEN_<SLUG>}` for Claude Code,
`${env:…}` for Cursor) or a VS Code secret input (`${input:…}`, asked for once and kept by VS Code).
Claude Desktop runs `mcplocal stdio` with the env names mcplocal reads and a token file.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from mcpctl.core.tokens import slug

MCPD_URL_ENV = "MCPLOCAL_MCPD_URL"  # what `mcplocal stdio` reads (MCPCTL_MCPD_URL is an alias)
TOKEN_FILE_ENV = "MCPCTL_TOKEN_FILE"
TOKEN_ENV = "MCPCTL_TOKEN"


def mcp_url(public_url: str, project: str) -> str:
    return f"{public_url.rstrip('/')}/projects/{project}/mcp"


def server_key(project: str) -> str:
    """The entry's name in every client's file: `mcpctl-<slug>`."""
    return f"mcpctl-{slug(project)}"


def token_env_name(project: str) -> str:
    """The environment variable the HTTP clients' entries read the token from: `MCPCTL_TOKEN_<SLUG>`."""
    return "MCPCTL_TOKEN_" + slug(project).upper().replace("-", "_")


def token_input_id(project: str) -> str:
    """The id of VS Code's secret input holding the token."""
    return f"{server_key(project)}-token"


def installed_mcplocal(executable: str = sys.executable) -> str | None:
    """The absolute path of the `mcplocal` installed with this Python (beside its executable: a
    virtualenv's bin/), else the one on PATH; None when there is none. Clients such as Claude Desktop
    start commands without the shell's PATH, so their config needs this path, not the bare name."""
    found = shutil.which("mcplocal", path=str(Path(executable).parent)) or shutil.which("mcplocal")
    return str(Path(found).absolute()) if found else None


def claude_desktop_entry(
    project: str, *, mcpd_url: str, command: str, token_file: str | None, token: str | None = None
) -> dict[str, Any]:
    """`mcplocal stdio --project P` with the token file (or, without one, the token itself: the
    file is user-wide, never committed)."""
    env = {MCPD_URL_ENV: mcpd_url.rstrip("/")}
    if token_file is not None:
        env[TOKEN_FILE_ENV] = token_file
    elif token is not None:
        env[TOKEN_ENV] = token
    return {"command": command, "args": ["stdio", "--project", project], "env": env}


def _bearer(reference: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {reference}"}


def claude_code_entry(project: str, url: str) -> dict[str, Any]:
    """`.mcp.json`'s entry: Claude Code expands `${VAR}` in headers from its environment."""
    return {"type": "http", "url": url, "headers": _bearer(f"${{{token_env_name(project)}}}")}


def claude_code_command(project: str, url: str) -> str:
    """The `claude mcp add` line that writes `claude_code_entry` into the project's `.mcp.json`
    (the header single-quoted, so the shell leaves `${VAR}` for Claude Code to expand)."""
    header = "Authorization: Bearer ${" + token_env_name(project) + "}"
    return (
        f"claude mcp add --transport http --scope project {shlex.quote(server_key(project))} "
        f"{shlex.quote(url)} --header {shlex.quote(header)}"
    )


def vscode_input(project: str) -> dict[str, Any]:
    """A secret input: VS Code asks for it once, masked, and keeps it out of the file."""
    return {
        "type": "promptString",
        "id": token_input_id(project),
        "description": f"mcpctl token for project {project}",
        "password": True,
    }


def vscode_entry(project: str, url: str) -> dict[str, Any]:
    return {"type": "http", "url": url, "headers": _bearer(f"${{input:{token_input_id(project)}}}")}


def cursor_entry(project: str, url: str) -> dict[str, Any]:
    """Cursor interpolates `${env:NAME}` in url and headers."""
    return {"url": url, "headers": _bearer(f"${{env:{token_env_name(project)}}}")}


def client_config(
    *,
    project: str,
    token: str,
    public_url: str,
    token_path: str | None,
    mcplocal_command: str = "mcplocal",
) -> dict[str, Any]:
    """Snippets for Claude Desktop, Claude Code, VS Code, Cursor and any Streamable-HTTP client.

    Only `http` (a generic `{url, headers}` to use at once) and, without `token_path`, Claude
    Desktop's user-wide entry carry the raw token; the others refer to a variable or an input."""
    key = server_key(project)
    url = mcp_url(public_url, project)
    desktop = claude_desktop_entry(
        project, mcpd_url=public_url, command=mcplocal_command, token_file=token_path, token=token
    )
    return {
        "claudeDesktop": {"mcpServers": {key: desktop}},
        "claudeCode": claude_code_command(project, url),
        "vscode": {"inputs": [vscode_input(project)], "servers": {key: vscode_entry(project, url)}},
        "cursor": {"mcpServers": {key: cursor_entry(project, url)}},
        "http": {"url": url, "headers": _bearer(token)},
    }
