"""The JSON-RPC codes and versions mcpd's supervisor keeps as plain numbers (so that spawning the
stdio servers at start-up does not wait for the SDK's import) are the SDK's."""

from __future__ import annotations

import mcp_types
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from mcpctl.mcpd.supervisor import connection, streamable


def test_the_supervisors_error_codes_are_the_sdks() -> None:
    for module in (connection, streamable):
        for name in (
            "INTERNAL_ERROR",
            "METHOD_NOT_FOUND",
            "REQUEST_TIMEOUT",
            "INVALID_REQUEST",
            "PARSE_ERROR",
        ):
            if hasattr(module, name):
                assert getattr(module, name) == getattr(mcp_types, name), f"{module.__name__}.{name}"
    assert streamable.CONNECTION_CLOSED == mcp_types.CONNECTION_CLOSED


def test_upstreams_are_initialized_with_the_sdks_newest_handshake_version() -> None:
    assert connection._latest_handshake_version() == LATEST_HANDSHAKE_VERSION
