"""`mcpctl test mcp URL`: validate a Streamable-HTTP MCP endpoint and report each check as a step.

options   the command's input, checked before any network call (usage errors, exit 2)
report    steps, their outcomes, the exit code, latency percentiles (pure)
tools     tool-name and listing rules, arguments derived from an input schema (pure)
render    the report as text, JSON or JUnit XML (pure)
wire      raw HTTP around the SDK: recording, replaying, reading JSON-RPC answers
runner    the checks themselves, on the official `mcp` SDK client (imported only by this command)
"""
