"""Domain rules shared by mcpd and the CLI: no web framework, ORM, HTTP client or CLI library here."""
