"""Times as the CLI shows them: ages (`5m`, `2h`, `3d`), timestamps, durations."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp from the API as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_age(timestamp: object, now: datetime) -> str:
    """kubectl's short age: `45s`, `5m`, `2h`, `3d`, `2y`; `<unknown>` without a timestamp."""
    created = parse_time(timestamp)
    if created is None:
        return "<unknown>"
    seconds = int((now - created).total_seconds())
    if seconds < -1:
        return "<invalid>"
    return _span(max(seconds, 0))


def _span(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    if seconds < 365 * 86400:
        return f"{seconds // 86400}d"
    return f"{seconds // (365 * 86400)}y"


def format_relative(timestamp: object, now: datetime) -> str:
    """A time relative to now: `in 29d` ahead, `5m ago` behind; the raw text if unparsable."""
    when = parse_time(timestamp)
    if when is None:
        return str(timestamp) if timestamp else "<unknown>"
    seconds = int((when - now).total_seconds())
    return f"in {_span(seconds)}" if seconds > 0 else f"{_span(-seconds)} ago"


def format_timestamp(value: object) -> str:
    """A timestamp to the second, in UTC (`2026-11-21T13:40:00Z`); the raw text if unparsable."""
    parsed = parse_time(value)
    if parsed is None:
        return str(value) if value else ""
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration_ms(value: object) -> str:
    """`850ms`, `1.2s`, `2m5s`."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    if value < 1000:
        return f"{int(value)}ms"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"
