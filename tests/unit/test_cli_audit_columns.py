"""`get auditevents` names the McpToken an event was made with (its owner stays the USER)."""

from __future__ import annotations

from datetime import UTC, datetime

from mcpctl.cli.printers import format_objects
from mcpctl.core.kinds import kind_for_noun

NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
AUDIT = kind_for_noun("auditevents")
assert AUDIT is not None


def _event(**spec: object) -> dict[str, object]:
    base = {"time": "2026-11-21T13:59:00Z", "kind": "tool_call", "outcome": "ok", "durationMs": 5}
    return {"kind": "AuditEvent", "metadata": {"name": "7"}, "spec": {**base, **spec}}


def _table(*events: dict[str, object]) -> list[dict[str, str]]:
    """The table's rows as {HEADER: cell}; cells are split on the header's column positions."""
    lines = format_objects(list(events), AUDIT, "table", single=False, now=NOW).splitlines()
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    bounds = [*starts[1:], None]
    return [
        {name: row[start:end].strip() for name, start, end in zip(names, starts, bounds, strict=True)}
        for row in lines[1:]
    ]


def test_an_event_made_with_a_token_shows_the_token_name_beside_its_owner() -> None:
    rows = _table(
        _event(user="owner@example.com", tokenName="vllm-agent", tokenSha="ab" * 32, project="mon"),
        _event(kind="login", user="a@b.c"),
    )

    assert rows[0]["USER"] == "owner@example.com"
    assert rows[0]["TOKEN"] == "vllm-agent"
    assert rows[1]["USER"] == "a@b.c"
    assert rows[1]["TOKEN"] == "<none>"


def test_a_token_event_whose_owner_is_gone_still_names_the_token() -> None:
    (row,) = _table(_event(tokenName="orphan", project="mon"))

    assert row["USER"] == "<none>"
    assert row["TOKEN"] == "orphan"
