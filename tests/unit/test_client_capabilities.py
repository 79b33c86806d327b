"""What an upstream's request needs the client to have declared, and whether it did."""

from __future__ import annotations

from typing import Any

import pytest

from mcpctl.mcplocal.client_capabilities import declares, missing_capability_error, required_capability

FORM = {"method": "elicitation/create", "params": {"message": "name?", "requestedSchema": {}}}
URL = {"method": "elicitation/create", "params": {"mode": "url", "url": "https://x", "message": "go"}}
SAMPLE = {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}
SAMPLE_TOOLS = {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5, "tools": []}}
ROOTS = {"method": "roots/list"}


@pytest.mark.parametrize(
    ("message", "declared", "ok"),
    [
        (FORM, {"elicitation": {}}, True),  # the shape before modes: form
        (FORM, {"elicitation": {"form": {}}}, True),
        (FORM, {"elicitation": {"url": {}}}, False),  # url only
        (URL, {"elicitation": {}}, False),
        (URL, {"elicitation": {"url": {}}}, True),
        (SAMPLE, {"sampling": {}}, True),
        (SAMPLE, {"elicitation": {}, "roots": {}}, False),
        (SAMPLE_TOOLS, {"sampling": {}}, False),
        (SAMPLE_TOOLS, {"sampling": {"tools": {}}}, True),
        (ROOTS, {"roots": {"listChanged": True}}, True),
        (ROOTS, {}, False),
        (ROOTS, None, False),
    ],
)
def test_what_a_request_needs_and_whether_it_was_declared(
    message: dict[str, Any], declared: Any, ok: bool
) -> None:
    required = required_capability(message)
    assert required is not None
    assert declares(declared, required) is ok


def test_the_32021_answer_names_the_missing_capability_as_client_capabilities() -> None:
    required = required_capability(SAMPLE)
    assert required == {"sampling": {}}
    code, message, data = missing_capability_error("sampling/createMessage", required)
    assert code == -32021 and "sampling" in message
    assert data == {"requiredCapabilities": {"sampling": {}}}
    assert required_capability({"method": "ping"}) is None
