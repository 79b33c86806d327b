"""The cross-replica invalidation messages (DESIGN §11): what one mcpd tells every other mcpd and every
mcplocal through Redis pub/sub, so that revocations and configuration changes reach them within a
second instead of within the positive introspection TTL.

Two kinds, each a small JSON object with a version and the publishing process's instance id
(`origin`, so a process ignores its own messages):

- `{"v": 1, "kind": "tokens-ended", "origin": …, "tokens": [sha, …]}`: McpTokens revoked or deleted;
- `{"v": 1, "kind": "changed", "origin": …, "projects": [name, …] | null}`: configuration changed
  (projects, servers, prompts, proxy models, bindings, users); `null` is "anything may have changed".

Pure: no Redis here (the adapters are `mcplocal/invalidation.py` and `mcpd/invalidation.py`). A
message is bounded (`MAX_BYTES`); anything unknown, malformed, oversized or of another version
decodes to None and is ignored: the positive TTL still bounds staleness.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

VERSION = 1
TOKENS_ENDED, CHANGED = "tokens-ended", "changed"
MAX_BYTES = 16 * 1024  # a message is read whole: far more than one revocation needs
MAX_TOKENS = 100  # token hashes per message (a deletion revokes the token's children too: chunked)
MAX_PROJECTS = 100  # beyond it a change is announced as "anything may have changed"
_SHA = re.compile(r"[0-9a-f]{64}")
_ORIGIN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_NAME_MAX = 253


@dataclass(frozen=True)
class TokensEnded:
    """Tokens that stopped working (by SHA-256 hex of the raw token)."""

    origin: str
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class Changed:
    """Configuration changed; `projects` None means any project's view may have changed."""

    origin: str
    projects: tuple[str, ...] | None = None


Invalidation = TokensEnded | Changed


def tokens_ended(origin: str, token_shas: list[str] | tuple[str, ...]) -> list[TokensEnded]:
    """The messages announcing `token_shas` ended: valid hashes only, once each, in bounded chunks."""
    shas = [sha for sha in dict.fromkeys(token_shas) if _SHA.fullmatch(sha)]
    return [
        TokensEnded(origin, tuple(shas[start : start + MAX_TOKENS]))
        for start in range(0, len(shas), MAX_TOKENS)
    ]


def changed(origin: str, projects: list[str] | tuple[str, ...] | None = None) -> Changed:
    """The message announcing a configuration change (of `projects`, or of anything)."""
    if projects is not None and (len(projects) > MAX_PROJECTS or not all(map(_valid_name, projects))):
        projects = None
    return Changed(origin, None if projects is None else tuple(dict.fromkeys(projects)))


def encode(message: Invalidation) -> str:
    """The wire form (compact JSON)."""
    body: dict[str, object] = {"v": VERSION, "origin": message.origin}
    if isinstance(message, TokensEnded):
        body.update(kind=TOKENS_ENDED, tokens=list(message.tokens))
    else:
        body.update(kind=CHANGED, projects=None if message.projects is None else list(message.projects))
    return json.dumps(body, separators=(",", ":"))


def decode(data: str | bytes) -> Invalidation | None:
    """The message, or None when it is not one this version understands (ignored)."""
    if len(data) > MAX_BYTES:
        return None
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        return None
    origin = body.get("origin")
    if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin):
        return None
    kind = body.get("kind")
    if kind == TOKENS_ENDED:
        shas = body.get("tokens")
        if not isinstance(shas, list) or len(shas) > MAX_TOKENS:
            return None
        if not all(isinstance(sha, str) and _SHA.fullmatch(sha) for sha in shas):
            return None
        return TokensEnded(origin, tuple(shas))
    if kind == CHANGED:
        projects = body.get("projects")
        if projects is None:
            return Changed(origin)
        if not isinstance(projects, list) or len(projects) > MAX_PROJECTS:
            return None
        if not all(isinstance(name, str) and _valid_name(name) for name in projects):
            return None
        return Changed(origin, tuple(projects))
    return None


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= _NAME_MAX


def channel(prefix: str) -> str:
    """The pub/sub channel of an installation (its prefix isolates installations sharing a Redis)."""
    return f"{prefix}:invalidation"


_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SCHEMES = ("redis://", "rediss://", "unix://")


def check_redis_url(url: str | None) -> str | None:
    """A Redis URL setting (redis://, rediss:// or unix://), or ValueError."""
    if url is not None and not url.startswith(_SCHEMES):
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    return url


def check_channel_prefix(prefix: str | None) -> str | None:
    """A channel prefix setting (letters, digits, `_.:-`, at most 64), or ValueError."""
    if prefix is not None and not _PREFIX.fullmatch(prefix):
        raise ValueError("a Redis channel prefix is 1-64 letters, digits, '_', '.', ':' or '-'")
    return prefix
