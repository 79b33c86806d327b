"""Splitting and paging of long results (mcplocal/proxy/content.py): JSON on top-level keys,
markdown on headings outside code fences, pages within the byte bound without cutting a
character, whole sections packed where they fit."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.mcplocal.proxy.content import Content, form_of, paginate, split_sections, table_of_contents


def test_json_objects_split_on_their_top_level_keys() -> None:
    text = json.dumps({"alpha": list(range(50)), "beta": {"x": "y" * 100}, "gamma": 3})
    sections = split_sections(text)
    assert [s.title for s in sections] == ["alpha", "beta", "gamma"]
    assert json.loads(sections[1].text) == {"beta": {"x": "y" * 100}}


def test_markdown_splits_on_headings_but_not_inside_code_fences() -> None:
    text = "intro\n# One\nbody\n```\n# not a heading\n```\n## Two\nmore\n"
    sections = split_sections(text)
    assert [s.title for s in sections] == [None, "One", "Two"]
    assert "# not a heading" in sections[1].text
    assert "".join(s.text for s in sections) == text, "nothing is lost or reordered"


def test_text_without_structure_has_no_sections() -> None:
    assert split_sections("just lines\nof text\n") == ()
    assert form_of("[1, 2") == "text"
    assert form_of("# Title\nx") == "markdown"


def test_pages_pack_whole_sections_and_cut_the_long_ones() -> None:
    text = "".join(f"# S{n}\n" + "x" * 300 + "\n" for n in range(10)) + "# Big\n" + "y\n" * 2000
    content = Content(text, sections=split_sections(text))
    pages = paginate(content, 1024)
    assert all(len(p.text.encode()) <= 1024 for p in pages)
    assert "".join(p.text for p in pages) == text
    assert pages[0].title == "S0 … S2"
    assert pages[-1].title is not None and pages[-1].title.startswith("Big (")
    toc = table_of_contents(content.sections, pages, 4096)
    assert toc.startswith("  page 1: S0 … S2\n")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=4000), st.integers(min_value=8, max_value=600))
def test_pages_never_exceed_the_bound_nor_cut_a_character(text: str, page_bytes: int) -> None:
    pages = paginate(Content(text), page_bytes)
    assert "".join(p.text for p in pages) == text
    assert all(0 < len(p.text.encode()) <= page_bytes for p in pages)


def test_the_table_of_contents_keeps_within_its_budget() -> None:
    content = Content("z\n" * 5000)
    pages = paginate(content, 64)
    toc = table_of_contents((), pages, 200)
    assert len(toc.encode()) <= 200 + 40 and "more pages" in toc
