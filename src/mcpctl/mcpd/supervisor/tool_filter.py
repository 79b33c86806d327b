"""A server's `tools.allow`/`tools.deny` (shell-style patterns): denied tools are not listed and
cannot be called, through the per-server proxy (routers/mcp_proxy.py) and the project endpoint
(gateway.py) alike."""

from __future__ import annotations

import fnmatch
from typing import Any

from mcpctl.mcpd.supervisor.runtime import ServerRuntime


def tool_allowed(runtime: ServerRuntime, tool: str) -> bool:
    allow, deny = runtime.config.tools_allow, runtime.config.tools_deny
    if allow and not any(fnmatch.fnmatchcase(tool, pattern) for pattern in allow):
        return False
    return not any(fnmatch.fnmatchcase(tool, pattern) for pattern in deny)


def filter_tools(runtime: ServerRuntime, answer: dict[str, Any]) -> dict[str, Any]:
    """A tools/list answer without the tools the server's filter denies."""
    result = answer.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return answer
    if not runtime.config.tools_allow and not runtime.config.tools_deny:
        return answer
    tools = [t for t in result["tools"] if isinstance(t, dict) and tool_allowed(runtime, str(t.get("name")))]
    return {**answer, "result": {**result, "tools": tools}}
