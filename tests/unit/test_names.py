"""Resource names (DNS labels), label maps and e-mail addresses (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core.errors import InvalidError
from mcpctl.core.names import check_email, check_labels, check_name

DNS_LABELS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


@pytest.mark.parametrize("name", ["a", "0", "web", "mcp-grafana", "a1-b2", "x" * 63])
def test_a_dns_label_is_a_valid_name(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-web", "web-", "Web", "web_1", "web.1", "wéb", "x" * 64, " web"])
def test_anything_but_a_dns_label_is_an_invalid_name(name: str) -> None:
    with pytest.raises(InvalidError) as caught:
        check_name(name, what="server name")
    assert caught.value.code == "invalid"
    assert caught.value.details == {"field": "server name"}


def test_a_non_string_name_is_invalid() -> None:
    with pytest.raises(InvalidError):
        check_name(None)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(DNS_LABELS)
def test_every_generated_dns_label_is_accepted(name: str) -> None:
    assert check_name(name) == name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_a_name_is_accepted_only_if_it_fully_matches_the_dns_label_rule(name: str) -> None:
    is_label = (
        0 < len(name) <= 63
        and name[0] != "-"
        and name[-1] != "-"
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in name)
    )
    if is_label:
        assert check_name(name) == name
    else:
        with pytest.raises(InvalidError):
            check_name(name)


def test_valid_label_maps_are_returned_unchanged() -> None:
    labels = {"team": "obs", "app.kubernetes.io/name": "grafana", "Tier_1": "", "v": "1.2-beta_3"}
    assert check_labels(labels) == labels


@pytest.mark.parametrize(
    "labels",
    [
        {"": "x"},
        {"-team": "x"},
        {"team-": "x"},
        {"Example.com/team": "x"},
        {"a/b/c": "x"},
        {"k" * 64: "x"},
        {"team": "has space"},
        {"team": "-x"},
        {"team": "v" * 64},
        {"team": 1},
    ],
)
def test_invalid_label_keys_or_values_are_invalid_errors(labels: dict[str, str]) -> None:
    with pytest.raises(InvalidError) as caught:
        check_labels(labels)
    assert caught.value.details == {"field": "labels"}


def test_an_email_is_returned_lower_cased() -> None:
    assert check_email("Bob@Example.COM") == "bob@example.com"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "bob",
        "@example.com",
        "bob@",
        "bob@ex@ample.com",
        "bob smith@example.com",
        "a" * 65 + "@example.com",
    ],
)
def test_malformed_emails_are_invalid_errors(email: str) -> None:
    with pytest.raises(InvalidError) as caught:
        check_email(email)
    assert caught.value.details == {"field": "email"}


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (check_name, "web\n"),
        (check_email, "bob@example.com\n"),
        (check_labels, {"team": "obs\n"}),
        (check_labels, {"team\n": "obs"}),
    ],
    ids=["name", "email", "label-value", "label-key"],
)
def test_a_trailing_newline_is_never_accepted(check: Callable[[Any], object], value: object) -> None:
    with pytest.raises(InvalidError):
        check(value)
