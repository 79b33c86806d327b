"""What an upstream's request to the client needs the client to have declared (DESIGN §5).

An upstream asks the caller's client for sampling, elicitation or its roots through the gateway. The
caller's declared capabilities decide whether it may be asked at all: a legacy caller declared them in
`initialize`, a 2026-07-28 caller in each request's envelope
(`_meta["io.modelcontextprotocol/clientCapabilities"]`). A request the client did not declare is never
put to it: a legacy caller's upstream gets an error answer, a 2026-07-28 caller gets -32021
(`MISSING_REQUIRED_CLIENT_CAPABILITY`) with the capability named in `requiredCapabilities`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_types import METHOD_NOT_FOUND, MISSING_REQUIRED_CLIENT_CAPABILITY

from mcpctl.mcplocal.ports import Message


def required_capability(message: Message) -> dict[str, Any] | None:
    """The ClientCapabilities (wire shape) an upstream's request needs; None for a method the gateway
    never puts to a client."""
    method = message.get("method")
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    if method == "sampling/createMessage":
        wants_tools = params.get("tools") is not None or params.get("toolChoice") is not None
        return {"sampling": {"tools": {}} if wants_tools else {}}
    if method == "elicitation/create":
        return {"elicitation": {"url": {}} if params.get("mode") == "url" else {"form": {}}}
    if method == "roots/list":
        return {"roots": {}}
    return None


def declares(capabilities: Any, required: Mapping[str, Any]) -> bool:
    """Whether declared capabilities (wire shape, e.g. from the envelope or `initialize`) cover
    `required`. A bare `elicitation: {}` (the shape before modes existed) means form support."""
    declared = capabilities if isinstance(capabilities, Mapping) else {}
    if "sampling" in required:
        sampling = declared.get("sampling")
        if not isinstance(sampling, Mapping):
            return False
        return "tools" not in required["sampling"] or isinstance(sampling.get("tools"), Mapping)
    if "elicitation" in required:
        elicitation = declared.get("elicitation")
        if not isinstance(elicitation, Mapping):
            return False
        if "url" in required["elicitation"]:
            return isinstance(elicitation.get("url"), Mapping)
        return isinstance(elicitation.get("form"), Mapping) or "url" not in elicitation
    if "roots" in required:
        return isinstance(declared.get("roots"), Mapping)
    return True


def refusal(method: str, required: Mapping[str, Any]) -> Message:
    """The error answer an upstream gets for a request its caller's client did not declare."""
    return {
        "error": {
            "code": METHOD_NOT_FOUND,
            "message": f"the client did not declare the capability {method} needs ({_name(required)})",
        }
    }


def missing_capability_error(method: str, required: Mapping[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(code, message, data) of the -32021 answer a 2026-07-28 caller gets."""
    return (
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        f"The server asked for {method}, which needs the {_name(required)} client capability; "
        "the request did not declare it",
        {"requiredCapabilities": dict(required)},
    )


def _name(required: Mapping[str, Any]) -> str:
    (kind, detail), *_ = required.items()
    modes = ".".join(detail) if isinstance(detail, Mapping) and detail else ""
    return f"{kind}.{modes}" if modes else kind
