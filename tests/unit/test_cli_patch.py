"""`patch NOUN NAME key=value…` builds an RFC 7396 merge patch of {metadata: {labels}, spec}."""

from __future__ import annotations

import click
import pytest

from mcpctl.cli.patch import build_merge_patch, parse_value


def test_values_are_yaml_scalars_and_flow_collections() -> None:
    assert build_merge_patch(
        ["replicas=3", "disabled=true", "servers=[a, b]", "cwd=null", "headers={X-A: b}", "command=uvx"]
    ) == {
        "spec": {
            "replicas": 3,
            "disabled": True,
            "servers": ["a", "b"],
            "cwd": None,
            "headers": {"X-A": "b"},
            "command": "uvx",
        }
    }


def test_dotted_keys_nest_and_a_spec_prefix_is_optional() -> None:
    assert build_merge_patch(["healthCheck.intervalSeconds=30", "spec.healthCheck.tool=ping"]) == {
        "spec": {"healthCheck": {"intervalSeconds": 30, "tool": "ping"}}
    }


def test_labels_are_metadata_and_always_strings() -> None:
    assert build_merge_patch(
        ["labels.team=obs", "metadata.labels.version=1", "labels.old=null", "labels.app.kubernetes.io/name=x"]
    ) == {"metadata": {"labels": {"team": "obs", "version": "1", "old": None, "app.kubernetes.io/name": "x"}}}


def test_whole_label_map_can_be_set_or_cleared() -> None:
    assert build_merge_patch(["labels={a: b}"]) == {"metadata": {"labels": {"a": "b"}}}
    assert build_merge_patch(["labels=null"]) == {"metadata": {"labels": None}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("2026-01-01", "2026-01-01"),
        ("yes", "yes"),
        ("a: b", "a: b"),
        ("- x", "- x"),
        ("http://h:3000/mcp", "http://h:3000/mcp"),
        ("[unclosed", "[unclosed"),
        ("1.5", 1.5),
        ("~", None),
        ("'quoted 3'", "quoted 3"),
        ("echo hi", "echo hi"),
    ],
)
def test_text_that_is_not_a_plain_scalar_or_flow_collection_stays_text(text: str, expected: object) -> None:
    assert parse_value(text) == expected


def test_a_value_may_contain_equals_signs() -> None:
    assert build_merge_patch(["url=http://h/?a=b"]) == {"spec": {"url": "http://h/?a=b"}}


@pytest.mark.parametrize(
    "assignment",
    [
        ["noequals"],
        ["=3"],
        ["metadata.name=x"],
        ["kind=Server"],
        ["status.x=1"],
        ["a..b=1"],
        ["replicas=1", "replicas=2"],
        ["healthCheck=null", "healthCheck.tool=x"],
        ["labels=3"],
    ],
)
def test_malformed_or_conflicting_assignments_are_usage_errors(assignment: list[str]) -> None:
    with pytest.raises(click.UsageError):
        build_merge_patch(assignment)
