"""The wire between a split data plane (`mcplocal serve|stdio`) and mcpd: one WebSocket per mcplocal
process at `LINK_PATH`, carrying JSON frames (one JSON object per text message) for every caller's
calls, both ways.

mcplocal → mcpd
- `auth`   {t, ask, bearer}: present a caller's McpToken; answered by `authed` {t, ask,
  introspection (the `GET /api/v1/mcptokens/introspect` body), holdSeconds} or {t, ask, unavailable}.
  Calls name the token by its hash for `holdSeconds`; then it is presented again.
- `call`   {t, id, token, server, method, params?, session?, relay?}: one upstream request on behalf
  of an authenticated token, as `Upstream.request` takes it (params as the caller sent them, envelope
  included; the server's own call timeout applies; `cancel` ends it sooner). Only FORWARDED_METHODS.
- `cancel` {t, id}: the caller went away; mcpd cancels the upstream request.
- `reply`  {t, ask, message}: the client's answer ({result}|{error}) to an `ask`.

mcpd → mcplocal
- `answer`  {t, id, message}: the upstream's JSON-RPC response ({result}|{error}).
- `failure` {t, id, message, code, reason?}: no answer could be had (UpstreamFailure); `reason`
  "token" when the token is not (or no longer) authenticated on this link.
- `note`    {t, id, message}: a notification of that request (progress, a log line).
- `ask`     {t, id, ask, message}: the upstream asks the caller's client ({method, params}).
- `event`   {t, server, message}: a notification that belongs to no request (list_changed, resource
  updates, log lines, an instance going down or coming back).
- `changed` {t}: projects, servers, bindings or users changed: cached views and introspections are stale.
- `ended`   {t, token}: the token was revoked, deleted or expired: refuse it and end what it has open.

Frames of a kind this side does not know are ignored (either end may be newer).

Batches: mcplocal offers the WebSocket subprotocol `SUBPROTOCOL`; an mcpd that chooses it, and then
both ends, may put several frames in one message, one per line (`batch`: what a sender has ready at
once, up to `BATCH_BYTES`). Under concurrent calls that is one message, one write and one read for
several frames instead of one each (docs/performance.md). A reader splits a message at its newlines
(`frames`): a single frame holds none, so a peer that batches nothing reads the same. mcpd splits
only on a link that chose batches, and closes one whose batch is larger or holds a bad line.
"""

from __future__ import annotations

import collections
from typing import Any

from mcpctl.core import jsontext

LINK_PATH = "/api/v1/link"
# The most a frame from mcpd may hold (an upstream's answer can be large: a stdio line may be 16 MiB).
MAX_FRAME_BYTES = 32 * 1024 * 1024
# The most a frame to mcpd may hold (a caller's request; mcplocal refuses a larger one itself), and
# before a link has presented a valid token.
MAX_INBOUND_FRAME_BYTES = 8 * 1024 * 1024
MAX_UNAUTHENTICATED_FRAME_BYTES = 64 * 1024
# What a call may ask of an upstream: what the router forwards.
FORWARDED_METHODS = frozenset(
    {
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
    }
)
# Close code when mcpd shuts down (the client reconnects to whichever mcpd answers).
GOING_AWAY = 1001

AUTH, AUTHED, CALL, CANCEL, REPLY = "auth", "authed", "call", "cancel", "reply"
ANSWER, FAILURE, NOTE, ASK, EVENT, CHANGED, ENDED = (
    "answer",
    "failure",
    "note",
    "ask",
    "event",
    "changed",
    "ended",
)
TOKEN_NOT_AUTHENTICATED = "token"


SUBPROTOCOL = "mcpctl.link.v2"
# A batch of frames is no larger (a larger frame goes alone), so that one fits what mcpd takes
# before a token is presented (mcplocal's first batch may be several callers' `auth` frames).
BATCH_BYTES = MAX_UNAUTHENTICATED_FRAME_BYTES


class BadFrame(ValueError):
    """A frame that is not a JSON object with a string `t`."""


def encode(frame: dict[str, Any]) -> str:
    return jsontext.dumps_text(frame)


def decode(text: str | bytes) -> dict[str, Any]:
    """One frame; BadFrame for anything else (the parser's nesting limit answers a deep bomb)."""
    try:
        frame = jsontext.loads(text)
    except ValueError as exc:
        raise BadFrame(f"not JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("t"), str):
        raise BadFrame("a frame is a JSON object with a string `t`")
    return frame


def batch(outbox: collections.deque[str], batching: bool) -> str:
    """The next message: the outbox's first frame, and when `batching` the frames after it that
    fit in `BATCH_BYTES` with it, one per line. Taken from the outbox."""
    lines = [outbox.popleft()]
    size = len(lines[0])
    while batching and outbox and size + 1 + len(outbox[0]) <= BATCH_BYTES:
        size += 1 + len(outbox[0])
        lines.append(outbox.popleft())
    return "\n".join(lines)


def frames(text: str) -> list[str]:
    """The frames of a message, each still to be decoded."""
    return text.split("\n")
