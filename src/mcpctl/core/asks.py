"""Asking a caller's client on an upstream's behalf (sampling, elicitation, roots): the messages a
relay takes are {"method", "params"}, plus this flag for the asks the gateway makes on its own
initiative rather than because an upstream asked.

An optional ask (mcpd checking a caller's roots before a request to a server that uses roots) is put
to the caller only when its client declared the capability — on its own stream (2025-11-25) or in an
`input_required` round (2026-07-28, as a server that uses roots asks natively in that era); otherwise
it gets an error at once and never fails the caller's request with -32021.
"""

from __future__ import annotations

from typing import Any

OPTIONAL = "io.mcpctl/optional"


def is_optional(message: dict[str, Any]) -> bool:
    return message.get(OPTIONAL) is True


NOT_ASKED = {
    "error": {"code": -32601, "message": "not asked: the caller can only be asked in a round of its own"}
}
