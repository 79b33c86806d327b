"""The supervisor: upstream MCP servers as running instances.

`links` moves JSON-RPC messages to one upstream (a child process over stdio, or a remote
Streamable HTTP / SSE URL); `connection` multiplexes many callers over one link; `instance` is one
supervised replica (start, initialize, probe, back off, restart); `runtime` holds a server's replicas
and picks one per request; `supervisor` reconciles what runs with what the database says.
"""
