"""The project endpoint's own pagination cursor over several upstreams.

A page is one upstream's page: the cursor says which server (by position) and that server's own
cursor, plus a fingerprint of the project's server list, so a cursor from before the project changed
is refused instead of silently skipping or repeating items. Clients treat it as opaque.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from mcpctl.core.errors import InvalidError

_VERSION = 1


@dataclass(frozen=True)
class Position:
    server: int  # index into the project's servers
    upstream: str | None  # that server's cursor, None for its first page


def fingerprint(servers: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(servers).encode()).hexdigest()[:12]


def encode(servers: Sequence[str], position: Position) -> str:
    raw = json.dumps(
        [_VERSION, fingerprint(servers), position.server, position.upstream], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(servers: Sequence[str], cursor: str) -> Position:
    """The position a cursor names, or InvalidError (JSON-RPC -32602 at the endpoint)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, stamp, server, upstream = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidError("invalid cursor") from exc
    if (
        version != _VERSION
        or not isinstance(server, int)
        or not (upstream is None or isinstance(upstream, str))
    ):
        raise InvalidError("invalid cursor")
    if stamp != fingerprint(servers):
        raise InvalidError("stale cursor: the project's servers changed; list again from the start")
    if not 0 <= server < len(servers):
        raise InvalidError("invalid cursor")
    return Position(server, upstream)


def next_position(servers: Sequence[str], current: Position, upstream_next: str | None) -> Position | None:
    """Where the page after this one starts: more of the same server, the next server, or the end."""
    if upstream_next:
        return Position(current.server, upstream_next)
    if current.server + 1 < len(servers):
        return Position(current.server + 1, None)
    return None
