"""Exposed tool names are legal for every client (DESIGN §5 Names) and map back exactly."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from mcpctl.core.namespacing import MAX_TOOL_NAME, Naming, is_legal, legal_name

LEGAL = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_dots_slashes_spaces_and_non_ascii_become_underscores() -> None:
    naming = Naming("always", "__", ("fs",))
    names = naming.assign([("fs", "read.file"), ("fs", "a/b c"), ("fs", "café"), ("fs", "ok-name_1")])
    assert names == ["fs__read_file", "fs__a_b_c", "fs__caf_", "fs__ok-name_1"]


def test_a_long_name_is_shortened_with_a_stable_hash_suffix() -> None:
    naming = Naming("always", "__", ("srv",))
    long = "x" * 100
    (first,) = naming.assign([("srv", long)])
    (again,) = naming.assign([("srv", long)])
    assert first is not None and len(first) == MAX_TOOL_NAME and LEGAL.match(first)
    assert first == again and first.startswith("srv__xxx")
    (other,) = naming.assign([("srv", "x" * 99 + "y")])
    assert other != first  # same first 55 characters, different names


def test_two_names_that_sanitize_alike_never_share_an_exposed_name() -> None:
    naming = Naming("always", "__", ("fs",))
    dotted_first = naming.assign([("fs", "a.b"), ("fs", "a_b"), ("fs", "a/b")])
    legal_first = naming.assign([("fs", "a_b"), ("fs", "a.b"), ("fs", "a/b")])
    # the name legal as it is keeps it wherever it is listed; the changed ones get hash suffixes
    assert dotted_first[1] == legal_first[0] == "fs__a_b"
    assert dotted_first[0] == legal_first[1] and dotted_first[2] == legal_first[2]
    assert len({*dotted_first}) == 3 and all(n and LEGAL.match(n) for n in dotted_first)
    # two changed names alike and no legal one: the first listed gets the plain form
    assert naming.assign([("fs", "a.b"), ("fs", "a/b")])[0] == "fs__a_b"


def test_never_mode_makes_names_legal_too_and_hides_exact_duplicates() -> None:
    naming = Naming("never", "__", ("a", "b"))
    assert naming.assign([("a", "read.file"), ("b", "read.file"), ("b", "x")]) == ["read_file", None, "x"]


def test_prompts_are_only_prefixed() -> None:
    naming = Naming("always", "-", ("docs",))
    assert naming.assign([("docs", "Say hello.")], legal=False) == ["docs-Say hello."]


@given(st.lists(st.text(min_size=1, max_size=90), max_size=12))
def test_every_exposed_tool_name_is_legal_unique_and_deterministic(upstream: list[str]) -> None:
    naming = Naming("always", "__", ("srv",))
    entries = [("srv", name) for name in upstream]
    names = naming.assign(entries)
    assert names == naming.assign(entries)
    shown = [n for n in names if n is not None]
    assert all(LEGAL.match(n) for n in shown)
    assert len(shown) == len(set(shown))
    # an entry is hidden only when the same upstream name was listed before
    for index, name in enumerate(names):
        assert name is not None or upstream[index] in upstream[:index]


def test_legal_names_are_left_alone() -> None:
    assert is_legal("a" * 64) and not is_legal("a" * 65) and not is_legal("") and not is_legal("a.b")
    assert legal_name("get_current_time") == "get_current_time"
