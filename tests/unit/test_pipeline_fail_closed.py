"""The content pipeline fails closed and lets a custom stage see every text (security review of
issue 13): a stage the process does not have fails every kind of result, a custom stage reaches
error texts, structured results' texts and embedded resources' texts, a project whose model is gone
is never served as `direct`, and hostile JSON cannot blow a result up."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from mcpctl.core.policy import Principal
from mcpctl.core.proxymodels import PAGINATE, UNRESOLVED, Stage
from mcpctl.mcplocal.filecache import FileCache
from mcpctl.mcplocal.ports import Caller, ProjectView
from mcpctl.mcplocal.proxy.content import Content, split_sections
from mcpctl.mcplocal.proxy.pipeline import ContentPipeline, parse_result_uri
from mcpctl.mcplocal.proxy.stages import Stages
from mcpctl.mcplocal.remote import view_from

CALLER = Caller(Principal("token", token_sha="a" * 64, project="p", reach=frozenset({"s"})), "bearer")
SHAPES: dict[str, dict[str, Any]] = {
    "error": {"content": [{"type": "text", "text": "SECRET in an error"}], "isError": True},
    "structured": {"content": [{"type": "text", "text": "SECRET"}], "structuredContent": {"k": 1}},
    "resource only": {"content": [{"type": "resource", "resource": {"uri": "x://a", "text": "SECRET"}}]},
    "text and resource": {
        "content": [
            {"type": "text", "text": "SECRET"},
            {"type": "resource", "resource": {"uri": "x://a", "text": "SECRET"}},
        ]
    },
    "plain": {"content": [{"type": "text", "text": "the SECRET"}]},
}


async def redact(content: Any, ctx: Any) -> Any:
    return content.with_(text=content.text.replace("SECRET", "[redacted]"))


def pipeline(tmp_path: Path) -> ContentPipeline:
    stages = Stages()
    stages._loaded["redact"] = redact  # what an entry point named `redact` would load
    return ContentPipeline(FileCache(tmp_path, 1 << 24), None, stages)


def view(*stages: Stage) -> ProjectView:
    return ProjectView("p", ("s",), proxy_model="custom", stages=stages)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_missing_stage_fails_every_kind_of_result(tmp_path: Path, shape: str) -> None:
    for missing in (Stage("not-installed"), Stage(UNRESOLVED)):
        out = anyio.run(pipeline(tmp_path).tool_result, CALLER, view(missing), "s", "t", SHAPES[shape])
        assert out["isError"] is True and "SECRET" not in json.dumps(out), out


def test_a_missing_stage_fails_a_resource_read(tmp_path: Path) -> None:
    result = {"contents": [{"uri": "x://a", "text": "SECRET"}]}
    with pytest.raises(MCPError, match="proxy model"):
        anyio.run(pipeline(tmp_path).resource_result, CALLER, view(Stage(UNRESOLVED)), "s", "x://a", result)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_custom_stage_reaches_every_text_of_a_result(tmp_path: Path, shape: str) -> None:
    model = view(Stage("redact"), Stage(PAGINATE, {"pageBytes": 1024}))
    out = anyio.run(pipeline(tmp_path).tool_result, CALLER, model, "s", "t", SHAPES[shape])
    assert "SECRET" not in json.dumps(out["content"]) and "[redacted]" in json.dumps(out["content"]), out
    assert out.get("isError") == SHAPES[shape].get("isError")
    assert out.get("structuredContent") == SHAPES[shape].get("structuredContent")


def test_deep_json_is_split_without_growing_and_too_deep_json_is_plain_text() -> None:
    inner = "[" * 900 + ",".join(["0"] * 50_000) + "]" * 900
    text = '{"a": 1, "c": ' + inner + "}"
    started = time.perf_counter()
    sections = split_sections(text)
    assert time.perf_counter() - started < 5
    assert sum(len(s.text) for s in sections) <= len(text) + 64
    assert split_sections('{"a": ' + "[" * 100_000 + "]" * 100_000 + ', "b": 1}') == ()
    assert Content("[" * 100_000 + "]" * 100_000).form == "text"


def test_only_plain_page_numbers_name_a_page() -> None:
    assert parse_result_uri("mcpctl://results/abc/2") == ("abc", 2)
    for uri in ("mcpctl://results/abc/²", "mcpctl://results/abc/" + "9" * 5000, "mcpctl://results//2"):
        assert parse_result_uri(uri) is None


def test_split_mode_never_serves_a_model_without_its_stages_as_direct() -> None:
    assert view_from("p", {"servers": ["s"], "proxyModel": "gate"}).stages == (Stage(UNRESOLVED),)
    assert view_from("p", {"proxyModel": "gate", "stages": ["junk"]}).stages == (Stage(UNRESOLVED),)
    assert view_from("p", {"servers": ["s"]}).stages == ()
    assert view_from("p", {"proxyModel": "gate", "stages": [{"type": "gate"}]}).stages == (Stage("gate"),)
