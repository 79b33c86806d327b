"""A POST's answer is application/json when the reply is all there is, an SSE stream otherwise."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from starlette.types import Message

from mcpctl.mcplocal import replies
from mcpctl.mcplocal.replies import ReplyOrStream

pytestmark = pytest.mark.anyio

REPLY = {"event": "message", "data": json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"ok": True}})}
PROGRESS = {
    "event": "message",
    "data": json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}),
}
SDK_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "Connection": "keep-alive",
    "Content-Type": "text/event-stream",
    "mcp-session-id": "s1",
}


async def _answer(events: list[dict[str, Any]], before_reply: anyio.Event | None = None) -> list[Message]:
    """Run a ReplyOrStream fed like the SDK feeds it; the messages it sent."""
    writer, reader = anyio.create_memory_object_stream[dict[str, Any]](0)
    sent: list[Message] = []
    client_gone = anyio.Event()

    async def feed() -> None:
        async with writer:
            for event in events:
                if event is REPLY and before_reply is not None:
                    await before_reply.wait()
                await writer.send(event)

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.start" and before_reply is not None:
            before_reply.set()

    async def receive() -> Message:
        await client_gone.wait()
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/projects/p/mcp", "headers": []}
    with anyio.fail_after(5), reader:  # the SDK closes its reader after the answer
        await ReplyOrStream(reader, data_sender_callable=feed, headers=SDK_HEADERS)(scope, receive, send)
    client_gone.set()
    return sent


def _headers(start: Message) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in start["headers"]}


def _body(sent: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_a_reply_alone_goes_out_as_one_json_body_with_the_session_header() -> None:
    sent = await _answer([REPLY])
    headers = _headers(sent[0])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"mcp-session-id"] == b"s1"
    assert b"cache-control" not in headers and b"connection" not in headers
    assert json.loads(_body(sent)) == json.loads(REPLY["data"])
    assert int(headers[b"content-length"]) == len(_body(sent))


async def test_a_notification_before_the_reply_makes_the_answer_an_sse_stream_of_both() -> None:
    sent = await _answer([PROGRESS, REPLY])
    assert _headers(sent[0])[b"content-type"].startswith(b"text/event-stream")
    body = _body(sent).decode()
    assert "notifications/progress" in body and '"result"' in body
    assert body.index("notifications/progress") < body.index('"result"')


async def test_a_reply_slower_than_the_grace_gets_its_stream_started_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replies, "STREAM_AFTER_SECONDS", 0.01)
    sent = await _answer([REPLY], before_reply=anyio.Event())  # the reply waits for the headers
    assert _headers(sent[0])[b"content-type"].startswith(b"text/event-stream")
    assert '"result"' in _body(sent).decode()


async def test_the_sdk_builds_its_sse_answers_through_the_name_install_replaces() -> None:
    from mcp.server import streamable_http

    assert hasattr(streamable_http, "EventSourceResponse")
    replies.install()
    assert streamable_http.EventSourceResponse is ReplyOrStream  # type: ignore[attr-defined]
