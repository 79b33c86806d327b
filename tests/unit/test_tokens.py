"""McpToken rules (DESIGN §4): format, checksum, hashing, display prefix, TTL, status and slug."""

from __future__ import annotations

import hashlib
import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core import tokens
from mcpctl.core.errors import InvalidError

NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LEN, CHECK_LEN = 43, 6
# Fixed (not generated at import): parametrized test ids must be the same in every pytest-xdist worker.
SAMPLE = "mcpctl_pat_RfrvTZgMgVHC3ZtfPxaKoYQyvgi8OL2myUEnz8g9c9o3eLG2R"


def _decode62(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + BASE62.index(char)
    return value


# --- format ------------------------------------------------------------------------------------------


def test_a_generated_token_is_the_prefix_43_base62_characters_and_a_6_character_checksum() -> None:
    token = tokens.generate()
    assert token.startswith("mcpctl_pat_")
    assert len(token) == 60 == tokens.TOKEN_LEN
    rest = token[len("mcpctl_pat_") :]
    assert re.fullmatch(r"[0-9A-Za-z]{49}", rest)
    body, check = rest[:BODY_LEN], rest[BODY_LEN:]
    assert _decode62(body) < 2**256  # 32 random bytes
    assert _decode62(check) == zlib.crc32(body.encode())  # CRC32 of the random part
    assert tokens.is_well_formed(token)
    assert tokens.looks_like_token(token)


def test_generated_tokens_are_unique_and_all_well_formed() -> None:
    minted = [tokens.generate() for _ in range(500)]
    assert len(set(minted)) == len(minted)
    assert all(tokens.is_well_formed(t) for t in minted)
    assert len({tokens.display_prefix(t) for t in minted}) > 490  # the display prefix is random too


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=tokens.TOKEN_LEN - 1),
    char=st.one_of(st.sampled_from(BASE62 + "_-+/= "), st.characters()),
)
def test_any_single_character_change_is_rejected_by_the_checksum_or_format(position: int, char: str) -> None:
    if SAMPLE[position] == char:
        char = BASE62[(BASE62.index(char) + 1) % 62] if char in BASE62 else "x"
    changed = SAMPLE[:position] + char + SAMPLE[position + 1 :]
    assert changed != SAMPLE
    assert not tokens.is_well_formed(changed)


def test_flipping_the_last_character_is_rejected() -> None:
    last = SAMPLE[-1]
    flipped = SAMPLE[:-1] + ("A" if last != "A" else "B")
    assert not tokens.is_well_formed(flipped)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "mcpctl_pat_",
        SAMPLE[:-1],  # one character short
        SAMPLE + "0",  # one character long
        SAMPLE + "\n",
        " " + SAMPLE,
        SAMPLE.replace("mcpctl_pat_", "mcpctl_pak_"),
        SAMPLE.replace("mcpctl_pat_", "MCPCTL_PAT_"),
        SAMPLE.replace("mcpctl_pat_", ""),
        "mcpctl_pat_" + "-" * 49,
        "mcpctl_pat_" + "é" * 49,
        SAMPLE[:20] + "_" + SAMPLE[21:],
    ],
)
def test_wrong_length_prefix_or_alphabet_is_not_well_formed(value: str) -> None:
    assert not tokens.is_well_formed(value)


def test_only_the_mcpctl_pat_prefix_claims_to_be_a_token() -> None:
    assert tokens.looks_like_token("mcpctl_pat_whatever")
    assert not tokens.looks_like_token("a-session-bearer")
    assert not tokens.looks_like_token("MCPCTL_PAT_" + SAMPLE[11:])


def test_token_sha_is_the_sha256_hex_of_the_whole_token() -> None:
    sha = tokens.token_sha(SAMPLE)
    assert sha == hashlib.sha256(SAMPLE.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    assert tokens.token_sha(tokens.generate()) != sha


def test_display_prefix_is_the_first_8_characters_after_mcpctl_pat() -> None:
    assert tokens.display_prefix(SAMPLE) == SAMPLE[11:19]
    assert len(tokens.display_prefix(SAMPLE)) == 8
    assert "mcpctl_pat_" not in tokens.display_prefix(SAMPLE)


# --- TTL ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["never", " never ", None, "", "   "])
def test_never_or_an_omitted_ttl_never_expires(text: str | None) -> None:
    assert tokens.parse_ttl(text, now=NOW) is None


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("45s", timedelta(seconds=45)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_a_duration_ttl_expires_that_long_from_now(text: str, delta: timedelta) -> None:
    assert tokens.parse_ttl(text, now=NOW) == NOW + delta


def test_an_iso_date_in_the_future_expires_at_its_midnight_utc() -> None:
    assert tokens.parse_ttl("2027-03-01", now=NOW) == datetime(2027, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-03-01T12:30:00Z", datetime(2027, 3, 1, 12, 30, tzinfo=UTC)),
        ("2027-03-01T12:30:00+00:00", datetime(2027, 3, 1, 12, 30, tzinfo=UTC)),
        ("2027-03-01T12:30:00+02:00", datetime(2027, 3, 1, 10, 30, tzinfo=UTC)),
        ("2027-03-01T12:30:00", datetime(2027, 3, 1, 12, 30, tzinfo=UTC)),  # naive means UTC
    ],
)
def test_an_iso_datetime_in_the_future_expires_at_that_instant(text: str, expected: datetime) -> None:
    expires = tokens.parse_ttl(text, now=NOW)
    assert expires == expected
    assert expires is not None and expires.utcoffset() == timedelta(0)  # reported in UTC


@pytest.mark.parametrize(
    "text", ["2026-11-21", "2020-01-01", "2026-11-21T13:59:59Z", "2026-11-21T14:00:00Z", "2001-01-01T00:00"]
)
def test_a_past_date_or_datetime_is_invalid(text: str) -> None:
    with pytest.raises(InvalidError):
        tokens.parse_ttl(text, now=NOW)


@pytest.mark.parametrize(
    "text",
    [
        "soon",
        "30",
        "d",
        "30x",
        "-5d",
        "0d",
        "1.5h",
        "30 d",
        "NEVER",
        "1D",
        "2027-13-01",
        "2027-02-30",
        "P30D",
    ],
)
def test_garbage_ttl_is_invalid(text: str) -> None:
    with pytest.raises(InvalidError):
        tokens.parse_ttl(text, now=NOW)


@pytest.mark.parametrize("text", ["99999999d", "999999999w", "9999-12-31T23:00:00-05:00"])
def test_a_ttl_beyond_the_representable_range_is_invalid_not_a_crash(text: str) -> None:
    with pytest.raises(InvalidError):
        tokens.parse_ttl(text, now=NOW)


def test_max_ttl_is_the_default_when_the_ttl_is_omitted() -> None:
    cap = timedelta(days=1)
    assert tokens.parse_ttl(None, now=NOW, max_ttl=cap) == NOW + cap
    assert tokens.parse_ttl("", now=NOW, max_ttl=cap) == NOW + cap


def test_max_ttl_refuses_never() -> None:
    with pytest.raises(InvalidError) as info:
        tokens.parse_ttl("never", now=NOW, max_ttl=timedelta(days=1))
    assert info.value.details["field"] == "ttl"
    assert info.value.details["maxTtlSeconds"] == 86400


@pytest.mark.parametrize("text", ["25h", "2d", "1w", "2026-11-23", "2026-11-22T14:00:02Z"])
def test_max_ttl_refuses_a_longer_lifetime(text: str) -> None:
    with pytest.raises(InvalidError) as info:
        tokens.parse_ttl(text, now=NOW, max_ttl=timedelta(days=1))
    assert info.value.details["maxTtlSeconds"] == 86400


@pytest.mark.parametrize("text", ["1d", "24h", "1440m", "86400s", "2026-11-22T14:00:00Z", "1h", "30s"])
def test_max_ttl_allows_an_equal_or_shorter_lifetime(text: str) -> None:
    expires = tokens.parse_ttl(text, now=NOW, max_ttl=timedelta(days=1))
    assert expires is not None and NOW < expires <= NOW + timedelta(days=1)


# --- status ------------------------------------------------------------------------------------------


def test_a_token_without_revocation_or_past_expiry_is_active() -> None:
    assert tokens.status(revoked_at=None, expires_at=None, now=NOW) == "active"
    assert tokens.status(revoked_at=None, expires_at=NOW + timedelta(seconds=1), now=NOW) == "active"


def test_a_token_is_expired_from_its_expiry_instant_on() -> None:
    assert tokens.status(revoked_at=None, expires_at=NOW, now=NOW) == "expired"
    assert tokens.status(revoked_at=None, expires_at=NOW - timedelta(days=1), now=NOW) == "expired"


def test_revocation_wins_over_expiry() -> None:
    past = NOW - timedelta(days=1)
    assert tokens.status(revoked_at=past, expires_at=past, now=NOW) == "revoked"
    assert tokens.status(revoked_at=past, expires_at=None, now=NOW) == "revoked"
    assert tokens.status(revoked_at=past, expires_at=NOW + timedelta(days=1), now=NOW) == "revoked"


# --- slug --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("monitoring", "monitoring"),
        ("My Project", "my-project"),
        ("ÄÖÜ", "project"),
        ("a__b..c", "a-b-c"),
        ("--edge--", "edge"),
        ("a - b", "a-b"),
        ("Team_42/Prod", "team-42-prod"),
        ("", "project"),
        ("---", "project"),
        ("!!!", "project"),
    ],
)
def test_slug_lowercases_replaces_collapses_and_trims(project: str, expected: str) -> None:
    assert tokens.slug(project) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_slug_is_always_a_nonempty_run_of_lowercase_alphanumerics_and_single_dashes(project: str) -> None:
    result = tokens.slug(project)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", result)
