"""mcpctl: a control plane for MCP servers ("kubectl for MCP servers")."""

__version__ = "0.1.0"
