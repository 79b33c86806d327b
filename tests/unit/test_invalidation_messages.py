"""The cross-replica invalidation messages (core/invalidation.py): round trips, bounds, and anything
unknown ignored."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpctl.core import invalidation as wire

SHA_A, SHA_B = "a" * 64, "0123456789abcdef" * 4


def test_tokens_ended_round_trips_with_its_origin() -> None:
    [message] = wire.tokens_ended("replica-1", [SHA_A, SHA_B, SHA_A])
    decoded = wire.decode(wire.encode(message))
    assert decoded == wire.TokensEnded("replica-1", (SHA_A, SHA_B))


def test_a_change_round_trips_for_some_projects_or_for_everything() -> None:
    for projects in (("p1", "p2"), None):
        message = wire.changed("r", projects)
        assert wire.decode(wire.encode(message)) == wire.Changed("r", projects)


def test_many_ended_tokens_go_in_bounded_messages() -> None:
    shas = [f"{n:064x}" for n in range(wire.MAX_TOKENS * 2 + 5)]
    messages = wire.tokens_ended("r", shas)
    assert [len(m.tokens) for m in messages] == [wire.MAX_TOKENS, wire.MAX_TOKENS, 5]
    assert [sha for m in messages for sha in m.tokens] == shas
    assert all(len(wire.encode(m)) <= wire.MAX_BYTES for m in messages)


def test_what_is_not_a_token_hash_is_never_announced() -> None:
    assert wire.tokens_ended("r", ["nope", "A" * 64]) == []


def test_too_many_projects_become_a_change_of_everything() -> None:
    assert wire.changed("r", [f"p{n}" for n in range(wire.MAX_PROJECTS + 1)]).projects is None


@pytest.mark.parametrize(
    "body",
    [
        {"v": 2, "kind": "changed", "origin": "r", "projects": None},  # another version
        {"kind": "changed", "origin": "r"},  # no version
        {"v": 1, "kind": "reboot", "origin": "r"},  # a kind this version does not know
        {"v": 1, "kind": "changed", "projects": None},  # no origin
        {"v": 1, "kind": "changed", "origin": "", "projects": None},
        {"v": 1, "kind": "changed", "origin": "x" * 65, "projects": None},
        {"v": 1, "kind": "tokens-ended", "origin": "r", "tokens": ["not-a-sha"]},
        {"v": 1, "kind": "tokens-ended", "origin": "r", "tokens": SHA_A},
        {"v": 1, "kind": "tokens-ended", "origin": "r", "tokens": [SHA_A] * (wire.MAX_TOKENS + 1)},
        {"v": 1, "kind": "changed", "origin": "r", "projects": [1]},
        {"v": 1, "kind": "changed", "origin": "r", "projects": "p1"},
        [1, 2],
    ],
)
def test_unknown_or_malformed_messages_are_ignored(body: object) -> None:
    assert wire.decode(json.dumps(body)) is None


def test_oversized_and_non_json_messages_are_ignored() -> None:
    assert wire.decode(b"\xff\xfe") is None
    assert wire.decode("{") is None
    padded = json.dumps(
        {"v": 1, "kind": "changed", "origin": "r", "projects": None, "pad": "x" * wire.MAX_BYTES}
    )
    assert wire.decode(padded) is None


@given(st.binary(max_size=512) | st.text(max_size=512))
def test_decoding_never_raises(data: bytes | str) -> None:
    result = wire.decode(data)
    assert result is None or isinstance(result, wire.TokensEnded | wire.Changed)


def test_settings_values_are_checked() -> None:
    assert wire.check_redis_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError):
        wire.check_redis_url("http://127.0.0.1:6379")
    assert wire.check_channel_prefix("mcpctl-prod") == "mcpctl-prod"
    with pytest.raises(ValueError):
        wire.check_channel_prefix("has space")
    assert wire.channel("mcpctl") == "mcpctl:invalidation"
