"""Durations like `90s`, `15m`, `12h`, `7d`, `2w` (settings, `--since`, later token TTLs)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from mcpctl.core.errors import InvalidError

_DURATION_RE = re.compile(r"^([1-9][0-9]{0,8})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse `<n>s|m|h|d|w` into a timedelta; InvalidError for anything else."""
    match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InvalidError(
            f"invalid duration {text!r}: expected a positive number followed by s, m, h, d or w (e.g. 30d)"
        )
    try:
        return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError as exc:
        raise InvalidError(f"duration {text!r} is too long") from exc


def parse_time_or_ago(text: str, *, now: datetime) -> datetime:
    """An ISO-8601 time, or a duration meaning that long before `now` (`1h` → an hour ago)."""
    if _DURATION_RE.match(text.strip()):
        try:
            return now - parse_duration(text)
        except OverflowError as exc:
            raise InvalidError(f"time {text!r} is too far back") from exc
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        value = value if value.tzinfo else value.replace(tzinfo=now.tzinfo)
        return value.astimezone(now.tzinfo) if now.tzinfo else value
    except (ValueError, OverflowError) as exc:
        raise InvalidError(f"invalid time {text!r}: expected ISO-8601 or a duration like 1h") from exc
