"""Asking a caller's client on an upstream's behalf (sampling, elicitation, roots): the messages a
relay takes are {"method", "params"}, plus `OPTIONAL` for the asks the gateway makes on its own
initiative rather than because an upstream asked.

An optional ask (mcpd checking a caller's roots before a request to a server that uses roots) never
fails the caller's request: a client that did not declare the capability gets no question and the
ask gets an error at once. How far it may go is its value:

- `AT_ONCE`: only when the client can be asked on the caller's own stream (a 2025-11-25 session);
  a 2026-07-28 caller is not asked (it would cost it an `input_required` round);
- `ROUND`: a 2026-07-28 caller that declared the capability is asked in an `input_required` round,
  as a server that needs its roots asks natively in that era.
"""

from __future__ import annotations

from typing import Any, Literal

OPTIONAL = "io.mcpctl/optional"
AT_ONCE: Literal["at-once"] = "at-once"
ROUND: Literal["round"] = "round"


def optional(message: dict[str, Any]) -> str | None:
    """How far an optional ask may go (AT_ONCE or ROUND); None for an upstream's own question."""
    value = message.get(OPTIONAL)
    return value if value in (AT_ONCE, ROUND) else None


NOT_ASKED = {"error": {"code": -32601, "message": "not asked: the caller cannot be asked that now"}}
