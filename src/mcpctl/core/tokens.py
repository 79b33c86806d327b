"""McpToken rules (DESIGN §4): format, checksum, hashing, display prefix, TTL and status. No I/O.

A token is `mcpctl_pat_` + 43 base62 characters (32 random bytes) + 6 base62 characters of the CRC32
of those 43 characters, so a mistyped or invented token is refused without a database lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from datetime import UTC, date, datetime, time, timedelta

from mcpctl.core.durations import parse_duration
from mcpctl.core.errors import InvalidError

PREFIX = "mcpctl_pat_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43  # 62**43 > 2**256: every 32-byte value fits
_CHECK_LEN = 6  # 62**6 > 2**32: every CRC32 fits
TOKEN_LEN = len(PREFIX) + _BODY_LEN + _CHECK_LEN
_TOKEN_RE = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{_BODY_LEN + _CHECK_LEN}}}")


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate() -> str:
    """A new random token (shown once to its creator; only `token_sha` of it is stored)."""
    body = _base62(int.from_bytes(secrets.token_bytes(32), "big"), _BODY_LEN)
    return PREFIX + body + _checksum(body)


def looks_like_token(value: str) -> bool:
    """Whether a bearer claims to be an McpToken (and must then be validated as one)."""
    return value.startswith(PREFIX)


def is_well_formed(value: str) -> bool:
    """Prefix, length, alphabet and checksum all hold (constant-time checksum compare)."""
    if not _TOKEN_RE.fullmatch(value):
        return False
    body, check = value[len(PREFIX) : len(PREFIX) + _BODY_LEN], value[-_CHECK_LEN:]
    return hmac.compare_digest(_checksum(body), check)


def token_sha(value: str) -> str:
    """SHA-256 hex of the whole token: what is stored and what RBAC subjects name."""
    return hashlib.sha256(value.encode()).hexdigest()


def display_prefix(value: str) -> str:
    """The first 8 characters after `mcpctl_pat_`, safe to show in listings."""
    return value[len(PREFIX) : len(PREFIX) + 8]


def parse_ttl(text: str | None, *, now: datetime, max_ttl: timedelta | None = None) -> datetime | None:
    """When a token with TTL `text` expires (None: never).

    `never`, `<n>s|m|h|d|w`, or an ISO-8601 date (midnight UTC) or datetime in the future. Omitted
    means `never`, or the cap when `max_ttl` is set; anything past the cap is refused, naming it.
    """
    value = (text or "").strip()
    if not value:
        return None if max_ttl is None else now + max_ttl
    if value == "never":
        expires = None
    elif re.fullmatch(r"[0-9]+[smhdw]", value):
        try:
            expires = now + parse_duration(value)
        except OverflowError as exc:
            raise InvalidError(f"ttl {value!r} is too long", details={"field": "ttl"}) from exc
    else:
        expires = _parse_iso(value, now)
        if expires <= now:
            raise InvalidError(f"ttl {value!r} is in the past", details={"field": "ttl"})
    if max_ttl is not None and (expires is None or expires - now > max_ttl + timedelta(seconds=1)):
        raise InvalidError(
            f"ttl {value!r} exceeds the maximum token lifetime of {_human(max_ttl)} (MCPD_MCPTOKEN_MAX_TTL)",
            details={"field": "ttl", "maxTtlSeconds": int(max_ttl.total_seconds())},
        )
    return expires


def _parse_iso(value: str, now: datetime) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidError(
            f"invalid ttl {value!r}: expected 'never', a duration like 30d (s, m, h, d, w) or an "
            "ISO-8601 date or datetime in the future",
            details={"field": "ttl"},
        ) from exc


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status(*, revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> str:
    """active, expired or revoked (revocation wins)."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


def slug(project: str) -> str:
    """Client-config key part: lower-case, non `[a-z0-9-]` → `-`, repeats collapsed, trimmed."""
    text = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", project.lower())).strip("-")
    return text or "project"
