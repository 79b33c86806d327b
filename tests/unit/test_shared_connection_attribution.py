"""mcpd's one connection to an instance carries many callers' requests: what the upstream sends that
belongs to one of them (a log line, a sampling or elicitation request, a roots read) must never reach
another caller. Over a link that cannot say whose a message is (stdio), an ambiguous one goes to no
one. The link here is an in-memory pipe (the `Link` protocol: JSON-RPC dicts in and out), so the
upstream's side is scripted message by message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mcpctl.core import asks
from mcpctl.mcpd.supervisor.connection import Connection
from mcpctl.mcpd.supervisor.instance import HealthConfig, Replica

pytestmark = pytest.mark.anyio

ALICE = [{"uri": "file:///home/alice/secret-project", "name": "alice"}]
BOB = [{"uri": "file:///home/bob/work", "name": "bob"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Pipe:
    """The upstream's end, scripted: what mcpd sent, and what the upstream says next."""

    pid = None
    closed_reason = None

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> tuple[dict[str, Any], None]:
        return await self.incoming.get(), None

    async def close(self) -> None:
        pass

    def answers_to(self, upstream_id: int) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("id") == upstream_id and "method" not in m]


class Caller:
    """One caller's side: what reached its client (asks, notifications)."""

    def __init__(
        self, roots: list[dict[str, Any]] | None = None, *, modern: bool = False, answers: bool = True
    ):
        self.roots, self.modern, self.answers = roots, modern, answers
        self.asked: list[dict[str, Any]] = []
        self.heard: list[dict[str, Any]] = []

    async def relay(self, message: dict[str, Any]) -> dict[str, Any]:
        if message["method"] == "roots/list" and self.modern and asks.optional(message) == asks.AT_ONCE:
            return asks.NOT_ASKED  # a 2026-07-28 caller is not asked mcpd's own question at once
        self.asked.append(message)
        if not self.answers:
            await asyncio.Event().wait()  # a person who has not answered yet
        if message["method"] == "roots/list":
            return {"result": {"roots": self.roots or []}}
        return {"result": {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}}

    async def notify(self, message: dict[str, Any]) -> None:
        self.heard.append(message)


async def settle() -> None:
    await asyncio.sleep(0.05)


async def test_an_upstream_that_withdraws_a_question_and_goes_on_reaches_no_other_caller() -> None:
    """A's handler elicits, A's person does not answer, the upstream withdraws its question (the TS
    SDK's request timeout) and goes on: with B in flight too, its next log line and sampling request
    cannot be told apart, so neither reaches B (the review's reproduction)."""
    pipe = Pipe()
    connection = Connection(pipe, label="shared")
    reader = asyncio.create_task(connection.run())
    a, b = Caller(answers=False), Caller()
    calls = [
        asyncio.create_task(
            connection.request("tools/call", {"name": "confirm"}, timeout=30, notify=a.notify, relay=a.relay)
        )
    ]
    await settle()
    await pipe.incoming.put(
        {
            "jsonrpc": "2.0",
            "id": 100,
            "method": "elicitation/create",
            "params": {
                "message": "delete A's files?",
                "requestedSchema": {"type": "object", "properties": {}},
            },
        }
    )
    await settle()
    assert [m["method"] for m in a.asked] == ["elicitation/create"]  # one caller in flight: it is A's
    calls.append(
        asyncio.create_task(
            connection.request("tools/call", {"name": "other"}, timeout=30, notify=b.notify, relay=b.relay)
        )
    )
    await settle()
    await pipe.incoming.put(
        {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 100, "reason": "timeout"},
        }
    )
    await pipe.incoming.put(
        {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "A: /home/alice/payroll"},
        }
    )
    await pipe.incoming.put(
        {
            "jsonrpc": "2.0",
            "id": 101,
            "method": "sampling/createMessage",
            "params": {
                "messages": [
                    {"role": "user", "content": {"type": "text", "text": "summarize Alice's payroll"}}
                ],
                "maxTokens": 10,
            },
        }
    )
    await settle()
    try:
        assert b.asked == [] and b.heard == [], "nothing of A's reached B"
        assert "error" in pipe.answers_to(101)[0], "the unattributable sampling request was refused"
        assert pipe.answers_to(100) == [], "a withdrawn question is not answered"
    finally:
        for task in (*calls, reader):
            task.cancel()


async def test_a_caller_held_to_no_roots_never_reads_another_callers_roots() -> None:
    """X (legacy, roots Alice) was admitted by its roots; Y (2026-07-28, not asked beforehand) runs
    beside it; a roots read nobody can attribute (stdio) gets no roots, not Alice's."""
    pipe = Pipe()
    connection = Connection(pipe, label="shared")
    reader = asyncio.create_task(connection.run())
    x, y = Caller(ALICE), Caller(BOB, modern=True)
    first = asyncio.create_task(connection.request("tools/call", {"name": "x1"}, timeout=30, relay=x.relay))
    await settle()
    await pipe.incoming.put({"jsonrpc": "2.0", "id": 900, "method": "roots/list"})  # the upstream uses roots
    await settle()
    assert pipe.answers_to(900) == [{"jsonrpc": "2.0", "id": 900, "result": {"roots": ALICE}}]  # X's own read
    await pipe.incoming.put({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})  # x1 is answered
    await first
    calls = [asyncio.create_task(connection.request("tools/call", {"name": "x"}, timeout=30, relay=x.relay))]
    await settle()
    calls.append(
        asyncio.create_task(connection.request("tools/call", {"name": "y"}, timeout=30, relay=y.relay))
    )
    await settle()
    await pipe.incoming.put({"jsonrpc": "2.0", "id": 901, "method": "roots/list"})
    await settle()
    try:
        assert pipe.answers_to(901) == [{"jsonrpc": "2.0", "id": 901, "result": {"roots": []}}]
    finally:
        for task in (*calls, reader):
            task.cancel()


async def test_a_probe_in_flight_does_not_take_a_callers_log_lines_from_it() -> None:
    """mcpd's own health probe is no caller's: with it and one caller in flight, the upstream's log
    line is that caller's (it was dropped as ambiguous: a probe every second lost a caller's log
    lines whenever they overlapped — seen as a conformance check losing 1 of 3). Another caller's
    request in flight still makes it ambiguous."""
    pipe = Pipe()
    connection = Connection(pipe, label="shared")
    reader = asyncio.create_task(connection.run())
    a, b = Caller(), Caller()
    line = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "A's"}}
    tasks = [
        asyncio.create_task(Replica.probe(connection, HealthConfig())),  # the probe, as it is sent
        asyncio.create_task(
            connection.request("tools/call", {"name": "log"}, timeout=30, notify=a.notify, relay=a.relay)
        ),
    ]
    try:
        await settle()
        await pipe.incoming.put(line)
        await settle()
        assert [m["params"]["data"] for m in a.heard] == ["A's"]
        tasks.append(
            asyncio.create_task(
                connection.request("tools/call", {"name": "b"}, timeout=30, notify=b.notify, relay=b.relay)
            )
        )
        await settle()
        await pipe.incoming.put(line)
        await settle()
        assert len(a.heard) == 1 and b.heard == []  # two callers in flight: shown to neither
    finally:
        for task in (*tasks, reader):
            task.cancel()
