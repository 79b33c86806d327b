"""The proxy models' parts that run in mcplocal (DESIGN §10)."""
