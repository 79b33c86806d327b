"""Ready-to-paste MCP client configuration for a project token (DESIGN §4). Pure data, no I/O."""

from __future__ import annotations

import shlex
from typing import Any

from mcpctl.core.tokens import slug


def mcp_url(public_url: str, project: str) -> str:
    return f"{public_url.rstrip('/')}/projects/{project}/mcp"


def client_config(*, project: str, token: str, public_url: str, token_path: str | None) -> dict[str, Any]:
    """Snippets for Claude Desktop, Claude Code, VS Code, Cursor and any Streamable-HTTP client."""
    key = f"mcpctl-{slug(project)}"
    url = mcp_url(public_url, project)
    headers = {"Authorization": f"Bearer {token}"}
    stdio_env = {"MCPCTL_MCPD_URL": public_url.rstrip("/")}
    if token_path:
        stdio_env["MCPCTL_TOKEN_FILE"] = token_path
    else:
        stdio_env["MCPCTL_TOKEN"] = token
    claude_code = (
        f"claude mcp add --transport http {shlex.quote(key)} {shlex.quote(url)} "
        f"--header {shlex.quote('Authorization: Bearer ' + token)}"
    )
    return {
        "claudeDesktop": {
            "mcpServers": {
                key: {"command": "mcplocal", "args": ["stdio", "--project", project], "env": stdio_env}
            }
        },
        "claudeCode": claude_code,
        "vscode": {"servers": {key: {"type": "http", "url": url, "headers": headers}}},
        "cursor": {"mcpServers": {key: {"url": url, "headers": headers}}},
        "http": {"url": url, "headers": headers},
    }
