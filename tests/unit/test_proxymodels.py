"""core.proxymodels: the built-in models as specs, and the stage checks of a stored ProxyModel."""

from __future__ import annotations

from typing import Any

import pytest

from mcpctl.core.errors import InvalidError
from mcpctl.core.proxymodels import BUILT_INS, Stage, built_in_spec, check_stages


def _no_lookup() -> list[str]:
    raise AssertionError("built-in stage types need no entry point lookup")


def test_built_in_specs_are_the_built_in_stages() -> None:
    for name, stages in BUILT_INS.items():
        assert built_in_spec(name) == {"stages": [s.as_spec() for s in stages]}


def test_built_in_stage_types_with_limits_at_their_bounds_are_accepted() -> None:
    raw = [
        {"type": "gate", "config": {"promptBytes": 0, "tools": 100}},
        {"type": "section-split"},
        {"type": "paginate", "config": {"pageBytes": 1024}},
        {"type": "paginate", "config": {"pageBytes": 1_048_576}},
        {"type": "summarize", "config": {"anything": [1, 2]}},
    ]
    stages = check_stages(raw, _no_lookup)
    assert stages[0] == Stage("gate", {"promptBytes": 0, "tools": 100})
    assert stages[1] == Stage("section-split", {})


def test_a_custom_stage_type_is_an_installed_entry_point_name() -> None:
    asked: list[int] = []

    def installed() -> list[str]:
        asked.append(1)
        return ["redact"]

    assert check_stages([{"type": "redact"}, {"type": "redact"}], installed) == (Stage("redact"),) * 2
    assert asked == [1]
    with pytest.raises(InvalidError) as info:
        check_stages([{"type": "gate"}, {"type": "translate"}], installed)
    assert info.value.details == {"stage": 1, "type": "translate"}


@pytest.mark.parametrize(
    "stage",
    [
        {"type": "paginate", "config": {"pageBytes": 1023}},
        {"type": "paginate", "config": {"pageBytes": 1_048_577}},
        {"type": "paginate", "config": {"pageBytes": 4096.0}},
        {"type": "gate", "config": {"tools": 0}},
        {"type": "gate", "config": {"tools": False}},
        {"type": "gate", "config": {"promptBytes": 262_145}},
        {"type": "gate", "config": "tools=5"},
        {"type": "UPPER"},
        {"type": None},
    ],
)
def test_bad_stages_name_their_index(stage: dict[str, Any]) -> None:
    with pytest.raises(InvalidError) as info:
        check_stages([{"type": "summarize"}, stage], lambda: [])
    assert info.value.details["stage"] == 1
