"""`mcpctl tools -p P` and `mcpctl call -p P TOOL key=value…`: try a project's MCP endpoint (DESIGN §5)
from the CLI, through the real endpoint, as the token or the logged-in user sees it.

arguments  `key=value` and `--json` turned into a call's arguments by the tool's input schema (pure)
show       tools as a table, names or objects; a tool result as text, JSON or YAML (pure)
access     which URL and which McpToken: `--url`/`--token`, `$MCPCTL_TOKEN`, or one minted for the login
session    the official `mcp` SDK client: connect (either era), list every page, call; errors as §9 says
commands   the two click commands
"""
