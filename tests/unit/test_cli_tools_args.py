"""`mcpctl call`'s arguments: `key=value` coerced by the tool's input schema, merged over `--json`;
every mistake a usage error naming the key. Plus the pure parts around them: the token's name, the
endpoint URL, the tool table's parameters and a result as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from mcpctl.cli.localtokens import local_token_name
from mcpctl.cli.main import cli
from mcpctl.cli.mcpcall.access import endpoint_url
from mcpctl.cli.mcpcall.arguments import (
    build_arguments,
    check_required,
    parse_json_arguments,
    split_assignments,
)
from mcpctl.cli.mcpcall.show import first_line, format_tools, parameters, result_text

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "opts": {"type": "object"},
        "text": {"type": "string"},
        "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "either": {"type": ["integer", "string"]},
        "level": {"$ref": "#/$defs/Level"},
        "anything": {},
    },
    "required": ["count"],
    "$defs": {"Level": {"type": "string", "enum": ["1", "2"]}},
}


def args(*items: str, base: dict[str, Any] | None = None, schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    return build_arguments(schema, split_assignments(items), base)


def usage_message(*items: str, schema: dict[str, Any] = SCHEMA) -> str:
    with pytest.raises(click.UsageError) as caught:
        args(*items, schema=schema)
    return caught.value.format_message()


def test_values_take_the_type_the_schema_declares() -> None:
    assert args(
        "count=3", "ratio=0.5", "flag=true", 'tags=["a","b"]', 'opts={"k":1}', "text=42", "maybe=null"
    ) == {
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a", "b"],
        "opts": {"k": 1},
        "text": "42",
        "maybe": None,
    }


def test_strings_stay_as_typed_even_when_they_look_like_json() -> None:
    assert args("text=true", "text2=x", schema={"properties": {"text": {"type": "string"}, "text2": {}}}) == {
        "text": "true",
        "text2": "x",
    }
    assert args("level=1") == {"level": "1"}  # a $ref to a string enum


def test_a_union_with_string_takes_json_when_it_fits_else_the_text() -> None:
    assert args("either=5") == {"either": 5}
    assert args("either=five") == {"either": "five"}


def test_an_untyped_property_takes_json_when_it_parses_else_the_text() -> None:
    assert args("anything=[1]") == {"anything": [1]}
    assert args("anything=hello world") == {"anything": "hello world"}


def test_an_enum_of_strings_keeps_the_text_and_other_enums_take_json() -> None:
    schema = {"properties": {"s": {"enum": ["1", "2"]}, "n": {"enum": [1, "x"]}}}
    assert args("s=1", "n=1", schema=schema) == {"s": "1", "n": 1}
    assert args("n=x", schema=schema) == {"n": "x"}


def test_an_integral_number_for_an_integer_is_an_integer() -> None:
    assert args("count=5.0") == {"count": 5}
    assert isinstance(args("count=5.0")["count"], int)


WRONG_TYPES = [
    ("count=three", "count"),
    ("count=1.5", "count"),
    ("count=true", "count"),
    ("flag=yes", "flag"),
    ("tags=a,b", "tags"),
    ("opts=[]", "opts"),
    ("maybe=x", "maybe"),
    ("ratio=NaN", "ratio"),
]


@pytest.mark.parametrize(("item", "key"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_a_usage_error_naming_the_key(item: str, key: str) -> None:
    assert usage_message(item).startswith(f"{key}: expected ")


def test_a_key_the_tool_does_not_take_is_a_usage_error_naming_it_and_the_known_ones() -> None:
    message = usage_message("colour=red")
    assert message.startswith("colour: the tool has no such argument") and "count" in message
    assert "none" in usage_message("x=1", schema={"type": "object"})


def test_additional_properties_admit_other_keys() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert args("n=2", schema=schema) == {"n": 2}
    assert args("s=x", schema={"type": "object", "additionalProperties": True}) == {"s": "x"}


def test_missing_required_arguments_are_named() -> None:
    with pytest.raises(click.UsageError) as caught:
        check_required({"required": ["a", "b"]}, {"b": 1}, "see: here")
    assert caught.value.format_message() == "a: required by the tool (see: here)"
    check_required({"required": ["a"]}, {"a": None}, "")


def test_key_value_wins_over_json_and_json_keys_pass_as_given() -> None:
    base = parse_json_arguments('{"count": 1, "extra": "kept"}')
    assert args("count=2", base=base) == {"count": 2, "extra": "kept"}


@pytest.mark.parametrize("text", ["[1]", '"x"', "{nope"])
def test_json_arguments_must_be_an_object(text: str) -> None:
    with pytest.raises(click.UsageError) as caught:
        parse_json_arguments(text)
    assert caught.value.format_message().startswith("--json: ")


@pytest.mark.parametrize(
    ("item", "problem"), [("novalue", "expected KEY=VALUE"), ("=1", "expected KEY=VALUE")]
)
def test_malformed_assignments_are_usage_errors(item: str, problem: str) -> None:
    with pytest.raises(click.UsageError) as caught:
        split_assignments([item])
    assert problem in caught.value.format_message()


def test_a_key_given_twice_is_a_usage_error() -> None:
    with pytest.raises(click.UsageError) as caught:
        split_assignments(["count=1", "count=2"])
    assert caught.value.format_message() == "count: given twice"


def test_at_file_reads_the_value_and_double_at_escapes(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text('["x"]\n')
    (tmp_path / "note.txt").write_text("line one\nline two\n")
    assert args(f"tags=@{tmp_path / 'list.json'}", f"text=@{tmp_path / 'note.txt'}") == {
        "tags": ["x"],
        "text": "line one\nline two\n",
    }
    assert args("text=@@handle") == {"text": "@handle"}
    assert usage_message(f"text=@{tmp_path / 'missing'}").startswith("text: cannot read ")


def test_usage_errors_exit_2_before_anything_is_sent() -> None:
    result = CliRunner().invoke(cli, ["call", "-p", "p", "tool", "--json", "[]"])
    assert result.exit_code == 2 and "--json" in result.output
    result = CliRunner().invoke(cli, ["call", "-p", "p", "tool", "oops"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output
    result = CliRunner().invoke(cli, ["tools", "-p", "p", "--token", "not-a-pat"])
    assert result.exit_code == 2 and "--token" in result.output
    result = CliRunner().invoke(cli, ["tools", "-p", "p", "--url", "ftp://x"])
    assert result.exit_code == 2


def test_the_login_token_is_named_for_the_host_and_the_user() -> None:
    assert local_token_name("mcpctl-cli", "alice", "Build.Box.example.com") == "mcpctl-cli-build-alice"
    assert len(local_token_name("mcpctl-cli", "u" * 80, "h")) == 63


def test_the_endpoint_url_is_mcpds_or_the_given_one() -> None:
    assert endpoint_url("a b", mcpd_url="http://m:3000/", url_flag=None) == "http://m:3000/projects/a%20b/mcp"
    assert endpoint_url("p", mcpd_url="x", url_flag="http://l:3200/") == "http://l:3200/projects/p/mcp"
    assert endpoint_url("p", mcpd_url="x", url_flag="http://l:3200/custom/mcp") == "http://l:3200/custom/mcp"


def test_the_tool_table_shows_first_lines_and_starred_required_parameters() -> None:
    tool = {"name": "t__x", "description": "\nFirst line.\nSecond.", "inputSchema": SCHEMA}
    assert parameters(SCHEMA).startswith("count*, ratio, flag")
    assert first_line("a" * 100).endswith("…") and len(first_line("a" * 100)) == 80
    assert format_tools([tool], "table").splitlines()[1].split(None, 1) == ["t__x", "First line."]
    assert format_tools([tool], "name") == "t__x"
    assert format_tools([tool], "yaml").startswith("tools:\n- name: t__x\n")
    assert format_tools([], "table") == ""


def test_a_result_prints_its_text_or_its_structured_content_or_names_other_content() -> None:
    assert result_text({"content": [{"type": "text", "text": "hi"}], "structuredContent": {"r": 1}}) == "hi"
    assert result_text({"content": [], "structuredContent": {"r": 1}}) == '{\n  "r": 1\n}'
    image = {"type": "image", "mimeType": "image/png", "data": "aGVsbG8="}
    link = {"type": "resource_link", "uri": "file:///x", "name": "x", "mimeType": "text/plain"}
    assert (
        result_text({"content": [image, link]})
        == "[image image/png, 5 bytes]\n[resource_link file:///x (text/plain)]"
    )
