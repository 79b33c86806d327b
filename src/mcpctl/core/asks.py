"""Asking a caller's client on an upstream's behalf (sampling, elicitation, roots): the messages a
relay takes are {"method", "params"}, plus this flag for the asks the gateway makes on its own
initiative rather than because an upstream asked.

An optional ask (mcpd checking a caller's roots before a request to a server that uses roots) is
answered only when the client can be asked at once, on the caller's own stream (a 2025-11-25 session
that declared the capability); otherwise it gets an error at once. It never fails the caller's
request and never costs a 2026-07-28 caller an `input_required` round.
"""

from __future__ import annotations

from typing import Any

OPTIONAL = "io.mcpctl/optional"


def is_optional(message: dict[str, Any]) -> bool:
    return message.get(OPTIONAL) is True


NOT_ASKED = {
    "error": {"code": -32601, "message": "not asked: the caller can only be asked in a round of its own"}
}
