"""Durations (`30d`, `--since 1h`) and times given as ISO-8601 or a duration ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core.durations import parse_duration, parse_time_or_ago
from mcpctl.core.errors import InvalidError

NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 30d ", timedelta(days=30)),
    ],
)
def test_a_duration_is_a_positive_count_of_one_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=999_999), st.sampled_from(sorted(UNIT_SECONDS)))
def test_any_positive_count_of_any_unit_parses_to_that_many_seconds(count: int, unit: str) -> None:
    assert parse_duration(f"{count}{unit}") == timedelta(seconds=count * UNIT_SECONDS[unit])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "30",
        "d",
        "0s",
        "01d",
        "-1d",
        "1.5h",
        "1y",
        "1D",
        "1 d",
        "1d2h",
        "1d\n1d",
        "1234567890s",
    ],
)
def test_anything_else_is_an_invalid_duration(text: str) -> None:
    with pytest.raises(InvalidError) as caught:
        parse_duration(text)
    assert caught.value.code == "invalid"


def test_a_non_string_duration_is_invalid() -> None:
    with pytest.raises(InvalidError):
        parse_duration(30)  # type: ignore[arg-type]


def test_a_duration_too_large_to_represent_is_invalid() -> None:
    with pytest.raises(InvalidError):
        parse_duration("999999999w")


def test_a_duration_as_a_time_means_that_long_before_now() -> None:
    assert parse_time_or_ago("1h", now=NOW) == NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00+02:00", datetime(2026, 11, 20, 8, tzinfo=UTC)),
        ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ],
)
def test_an_iso_time_is_taken_as_is_and_a_naive_one_in_the_zone_of_now(text: str, expected: datetime) -> None:
    assert parse_time_or_ago(text, now=NOW) == expected


def test_a_naive_iso_time_takes_the_zone_of_now_not_utc() -> None:
    tz = timezone(timedelta(hours=5))
    assert parse_time_or_ago("2026-11-20T10:00:00", now=NOW.astimezone(tz)).utcoffset() == timedelta(hours=5)


@pytest.mark.parametrize("text", ["", "yesterday", "0h", "2026-13-01", "2026-11-20T10:00:00+99:00"])
def test_a_time_that_is_neither_iso_nor_a_duration_is_invalid(text: str) -> None:
    with pytest.raises(InvalidError):
        parse_time_or_ago(text, now=NOW)


def test_a_duration_ago_before_the_earliest_representable_time_is_invalid() -> None:
    with pytest.raises(InvalidError):
        parse_time_or_ago("9999999w", now=NOW)
