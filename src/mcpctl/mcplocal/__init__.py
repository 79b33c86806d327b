"""mcplocal: the project MCP endpoint (DESIGN §5).

One router (discovery cache, namespacing, pagination, token scoping, audit) behind one port to the
control plane. Two adapters implement the port: in-process inside mcpd (the embedded default, see
`mcpctl.mcpd.gateway`) and HTTP to a remote mcpd (`mcplocal serve --mcpd-url`, `mcplocal stdio`).
"""
