"""Kubernetes label selectors (`get -l`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core.errors import InvalidError
from mcpctl.core.selectors import parse_selector

OBS = {"team": "obs", "tier": "backend"}
WEB = {"team": "web"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("team=obs", (OBS,)),
        ("team==obs", (OBS,)),
        (" team = obs ", (OBS,)),
        ("team!=obs", (WEB, BARE)),
        ("tier", (OBS,)),
        ("!tier", (WEB, BARE)),
        ("team in (obs, web)", (OBS, WEB)),
        ("team notin (obs)", (WEB, BARE)),
        ("team in ()", ()),
        ("team=obs,tier=backend", (OBS,)),
        ("team in (obs,web),!tier", (WEB,)),
        ("team=", ()),
    ],
)
def test_a_selector_matches_exactly_the_label_maps_it_describes(
    selector: str, matches: tuple[dict[str, str], ...]
) -> None:
    matcher = parse_selector(selector)
    assert [labels for labels in (OBS, WEB, BARE) if matcher(labels)] == list(matches)


@pytest.mark.parametrize("selector", ["", "   "])
def test_an_empty_selector_matches_everything(selector: str) -> None:
    assert all(parse_selector(selector)(labels) for labels in (OBS, WEB, BARE))


@pytest.mark.parametrize(
    "selector",
    [
        "=obs",
        "team obs",
        "team=obs=x",
        "team in obs",
        "team in (obs",
        "team)",
        "!team=obs",
        "team=obs,",
        ",team",
        "team in (a,(b))",
        "team >= 1",
    ],
)
def test_malformed_selectors_are_invalid_errors(selector: str) -> None:
    with pytest.raises(InvalidError) as caught:
        parse_selector(selector)
    assert caught.value.code == "invalid"
    assert caught.value.details == {"selector": selector}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab=!(), \tinotx", max_size=20))
def test_arbitrary_selector_text_either_compiles_or_raises_invalid_error(selector: str) -> None:
    try:
        matcher = parse_selector(selector)
    except InvalidError:
        return
    assert matcher(OBS) in (True, False)


LABEL_MAPS = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", ""]), max_size=3)


@settings(max_examples=200, deadline=None)
@given(LABEL_MAPS, st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"]))
def test_negated_terms_match_exactly_what_the_positive_terms_do_not(
    labels: dict[str, str], key: str, value: str
) -> None:
    assert parse_selector(f"{key}!={value}")(labels) is not parse_selector(f"{key}={value}")(labels)
    assert parse_selector(f"!{key}")(labels) is not parse_selector(key)(labels)
    assert parse_selector(f"{key} notin ({value},z)")(labels) is not parse_selector(f"{key} in ({value},z)")(
        labels
    )
