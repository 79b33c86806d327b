"""mcpctl: a control plane for MCP servers ("kubectl for MCP servers")."""

import sys

__version__ = "0.1.0"

# httpx imports its own command line (`httpx._main`: rich, pygments, click) whenever those are
# installed — ~0.08 s of CPU on every start of a program that imports httpx (a fifth of a CLI call);
# no mcpctl program runs it, and httpx works without it (its `main` then says how to install it).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
