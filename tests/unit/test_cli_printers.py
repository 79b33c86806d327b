"""Output of `get`: tables (alignment, AGE, <none>), and the -o name/json/yaml shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from mcpctl.cli.printers import format_objects, render_table
from mcpctl.cli.timefmt import format_age, format_duration_ms
from mcpctl.core.kinds import kind_for_noun

NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
SERVERS = kind_for_noun("servers")
assert SERVERS is not None


def _iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat().replace("+00:00", "Z")


def _server(name: str, *, age: timedelta, **spec: object) -> dict[str, object]:
    return {
        "kind": "Server",
        "metadata": {"name": name, "labels": {"team": "obs"}, "id": "x", "createdAt": _iso(age)},
        "spec": {"transport": "stdio", "command": "uvx", "args": ["mcp-time"], **spec},
        "status": {"projects": ["monitoring", "dev"]},
    }


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(minutes=5), "5m"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=3), "3d"),
        (timedelta(days=400), "1y"),
    ],
)
def test_age_is_the_largest_whole_unit(delta: timedelta, expected: str) -> None:
    assert format_age(_iso(delta), NOW) == expected


def test_age_without_a_timestamp_is_unknown() -> None:
    assert format_age(None, NOW) == "<unknown>"
    assert format_age("not a time", NOW) == "<unknown>"


def test_age_accepts_offsets_and_naive_times_as_utc() -> None:
    assert format_age("2026-11-21T15:00:00+02:00", NOW) == "1h"
    assert format_age("2026-11-21T13:00:00", NOW) == "1h"


def test_durations_read_naturally() -> None:
    assert [format_duration_ms(v) for v in (12, 1250, 125000, None)] == ["12ms", "1.2s", "2m5s", ""]


def test_table_columns_are_aligned_three_spaces_apart_without_trailing_blanks() -> None:
    text = render_table(["NAME", "X", "AGE"], [["a", "long-value", "5m"], ["bbbbbb", "", "2h"]])
    assert text.splitlines() == [
        "NAME     X            AGE",
        "a        long-value   5m",
        "bbbbbb                2h",
    ]


def test_server_table_has_kubectl_columns_and_age() -> None:
    objs = [
        _server("time", age=timedelta(minutes=5)),
        _server("docs", age=timedelta(days=3), transport="http", url="https://d/mcp"),
    ]
    lines = format_objects(objs, SERVERS, "table", single=False, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "TRANSPORT", "REPLICAS", "PROJECTS", "AGE"]
    assert lines[1].split() == ["time", "stdio", "1", "monitoring,dev", "5m"]
    assert lines[2].split() == ["docs", "http", "-", "monitoring,dev", "3d"]
    starts = {line.index(cell) for line, cell in zip(lines, ["TRANSPORT", "stdio", "http"], strict=True)}
    assert len(starts) == 1


def test_wide_adds_command_or_url_and_labels() -> None:
    objs = [_server("time", age=timedelta(hours=1))]
    lines = format_objects(objs, SERVERS, "wide", single=False, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "TRANSPORT", "REPLICAS", "PROJECTS", "COMMAND/URL", "AGE", "LABELS"]
    assert "uvx mcp-time" in lines[1] and lines[1].endswith("team=obs")


def test_empty_cells_show_none() -> None:
    obj = _server("time", age=timedelta(hours=1))
    obj["status"] = {}
    assert "<none>" in format_objects([obj], SERVERS, "table", single=False, now=NOW)


def test_name_output_is_lowercase_singular_kind_slash_name() -> None:
    objs = [_server("time", age=timedelta(0)), _server("docs", age=timedelta(0))]
    assert format_objects(objs, SERVERS, "name", single=False) == "server/time\nserver/docs"
    rbac = kind_for_noun("rbac")
    assert rbac is not None
    assert format_objects([{"metadata": {"name": "viewers"}}], rbac, "name", single=False) == "rbac/viewers"


def test_json_prints_the_object_for_one_name_and_a_list_otherwise() -> None:
    obj = _server("time", age=timedelta(0))
    assert json.loads(format_objects([obj], SERVERS, "json", single=True)) == obj
    as_list = json.loads(format_objects([obj], SERVERS, "json", single=False))
    assert as_list == {"kind": "List", "items": [obj]}
    assert json.loads(format_objects([], SERVERS, "json", single=False)) == {"kind": "List", "items": []}


def test_yaml_keeps_kind_metadata_spec_order_and_round_trips() -> None:
    obj = _server("time", age=timedelta(0), env={"TZ": "2026-01-01", "ON": "yes"})
    text = format_objects([obj], SERVERS, "yaml", single=True)
    assert text.startswith("kind: Server\nmetadata:\n")
    assert yaml.safe_load(text) == obj
    several = yaml.safe_load(format_objects([obj, obj], SERVERS, "yaml", single=False))
    assert several["kind"] == "List" and len(several["items"]) == 2


def test_audit_events_table_has_no_name_column_and_shows_the_user() -> None:
    audit = kind_for_noun("audit")
    assert audit is not None
    event = {
        "kind": "AuditEvent",
        "metadata": {"name": "42"},
        "spec": {
            "time": "2026-11-21T13:59:00.123Z",
            "kind": "login",
            "user": "a@b.c",
            "outcome": "ok",
            "durationMs": 3,
        },
    }
    lines = format_objects([event], audit, "table", single=False, now=NOW).splitlines()
    assert lines[0].split() == [
        "TIME", "KIND", "USER", "TOKEN", "PROJECT", "SERVER", "TARGET", "OUTCOME", "DURATION"
    ]  # fmt: skip
    assert lines[1].split() == [
        "2026-11-21T13:59:00Z",
        "login",
        "a@b.c",
        "<none>",
        "<none>",
        "<none>",
        "<none>",
        "ok",
        "3ms",
    ]
