"""`StreamableHttpLink`, mcpd's own Streamable HTTP client on its keep-alive HTTP/1.1 pool: against
the real fixture server (behind a relay that records the requests on the wire) for what real servers
do, and against a scripted HTTP/1.1 server (scripted_http.py) for what they cannot be made to do:
HTTP errors, redirects, event streams that stop early, oversized events."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from mcpctl.mcpd.supervisor import streamable
from mcpctl.mcpd.supervisor.connection import Connection, UpstreamGone
from mcpctl.mcpd.supervisor.instance import HealthConfig, ServerConfig
from mcpctl.mcpd.supervisor.links import LinkClosed, Received, SpawnError
from mcpctl.mcpd.supervisor.streamable import StreamableHttpLink
from tests.integration.npm_upstreams import started
from tests.integration.scripted_http import Reply, Request, ScriptedServer, event, recorded, scripted
from tests.integration.test_upstream_keepalive import FIXTURE, fixture_over_http
from tests.processes import clean_env, free_port, wait_listening

pytestmark = pytest.mark.anyio

VERSION = "2025-11-25"
SESSION = "scripted-session-1"
INITIALIZE = {
    "protocolVersion": VERSION,
    "capabilities": {"sampling": {}},
    "clientInfo": {"name": "test", "version": "0"},
}
SERVER_INFO = {"protocolVersion": VERSION, "capabilities": {}, "serverInfo": {"name": "s", "version": "1"}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALL_ID = 2


def call(request_id: int, tool: str, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, **params},
    }


def answer(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def text_of(message: dict[str, Any]) -> str:
    return str(message["result"]["content"][0]["text"])


@contextlib.contextmanager
def conformance_over_http() -> Iterator[int]:
    """The fixture server with its conformance surface: sampling tools, resumable event streams."""
    port = free_port()
    command = [sys.executable, str(FIXTURE), "http", "--port", str(port), "--conformance"]
    process = subprocess.Popen(command, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, process, "the conformance fixture server")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def fixture_port() -> Iterator[int]:
    with fixture_over_http() as port:
        yield port


@pytest.fixture(scope="module")
def conformance_port() -> Iterator[int]:
    with conformance_over_http() as port:
        yield port


@asynccontextmanager
async def opened(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[StreamableHttpLink]:
    link = await StreamableHttpLink.open(url, headers or {}, connect_timeout=5)
    try:
        yield link
    finally:
        with anyio.fail_after(5):
            await link.close()


async def handshake(link: StreamableHttpLink, request_id: int = 1) -> dict[str, Any]:
    """initialize, its answer, notifications/initialized; the InitializeResult."""
    await link.send({"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": INITIALIZE})
    (message, related), *_ = await until_answer(link, request_id)
    assert related == request_id
    assert "result" in message, message
    await link.send(INITIALIZED)
    return dict(message["result"])


async def until_answer(link: StreamableHttpLink, request_id: int) -> list[Received]:
    """What the link receives up to the answer to `request_id`, which comes first in the list."""
    before: list[Received] = []
    while True:
        message, related = await link.receive()
        if "method" not in message and message.get("id") == request_id:
            return [(message, related), *before]
        before.append((message, related))


async def error_for(link: StreamableHttpLink, message: dict[str, Any]) -> dict[str, Any]:
    """Send `message` (a request); its answer, which must be an error for it, on its own stream."""
    await link.send(message)
    (reply, related), *_ = await until_answer(link, message["id"])
    assert related == message["id"]
    assert "error" in reply, reply
    return dict(reply["error"])


def mcp(on_request: Any, *, session: str | None = SESSION, on_get: Any = None) -> Any:
    """A scripted MCP server: initialize answered as JSON with `session`, notifications and responses
    accepted (202), GET by `on_get` (default 405: no GET stream), DELETE 200; every other request by
    `on_request`."""

    async def handle(request: Request, reply: Reply) -> None:
        if request.method == "DELETE":
            await reply.send(200)
        elif request.method == "GET":
            await (on_get(request, reply) if on_get else reply.send(405))
        elif "id" not in (message := request.message()) or "method" not in message:
            await reply.send(202)
        elif message["method"] == "initialize":
            headers = [("mcp-session-id", session)] if session is not None else []
            await reply.json(answer(message["id"], SERVER_INFO), headers)
        else:
            await on_request(request, reply)

    return handle


def posts(server: ScriptedServer, method: str) -> list[Request]:
    return [r for r in server.requests if r.method == "POST" and r.message().get("method") == method]


# ---- against the real fixture server ---------------------------------------------------------------


async def test_the_session_id_and_negotiated_version_ride_on_every_request_after_initialize(
    fixture_port: int,
) -> None:
    async with recorded(fixture_port) as relay:
        with anyio.fail_after(15):
            async with opened(f"http://127.0.0.1:{relay.port}/mcp") as link:
                result = await handshake(link)
                await link.send(call(CALL_ID, "echo", {"text": "hi"}))
                (reply, related), *_ = await until_answer(link, CALL_ID)
                assert related == CALL_ID
                assert text_of(reply) == "hi"
                session = link.session_id
                assert session
                assert link.protocol_version == result["protocolVersion"] == VERSION
    first, *later = relay.requests()
    assert first.message()["method"] == "initialize"
    assert "mcp-session-id" not in first.headers
    methods = [(r.method, r.message().get("method") if r.body else None) for r in later]
    assert ("POST", "notifications/initialized") in methods
    assert ("POST", "tools/call") in methods
    assert ("DELETE", None) in methods
    for request in later:
        assert request.headers.get("mcp-session-id") == session, request
        assert request.headers.get("mcp-protocol-version") == VERSION, request


async def test_progress_notifications_on_a_calls_stream_are_related_to_that_call(fixture_port: int) -> None:
    with anyio.fail_after(15):
        async with opened(f"http://127.0.0.1:{fixture_port}/mcp") as link:
            await handshake(link)
            await link.send(
                call(CALL_ID, "progress", {"steps": 3, "delay": 0.01}, _meta={"progressToken": "tok"})
            )
            (reply, related), *before = await until_answer(link, CALL_ID)
    assert (text_of(reply), related) == ("done 3", CALL_ID)
    progress = [(m, r) for m, r in before if m.get("method") == "notifications/progress"]
    assert [m["params"]["progress"] for m, _ in progress] == [1, 2, 3]
    assert {m["params"]["progressToken"] for m, _ in progress} == {"tok"}
    assert {r for _, r in progress} == {CALL_ID}


async def test_log_lines_of_a_call_are_related_to_it_and_later_ones_come_unrelated(fixture_port: int) -> None:
    with anyio.fail_after(15):
        async with opened(f"http://127.0.0.1:{fixture_port}/mcp") as link:
            await handshake(link)
            await link.send(call(CALL_ID, "log", {"message": "inside"}))
            (reply, _), *before = await until_answer(link, CALL_ID)
            assert text_of(reply) == "logged"
            logs = [(m["params"]["data"], r) for m, r in before if m.get("method") == "notifications/message"]
            assert logs == [("inside", CALL_ID)]
            # a log line sent after the answer, outside any request, comes on the GET stream
            await link.send(call(3, "log_later", {"message": "outside", "delay": 0.05}))
            await until_answer(link, 3)
            message, related = await link.receive()
    assert message["method"] == "notifications/message"
    assert message["params"]["data"] == "outside"
    assert related is None


async def test_a_servers_own_request_on_a_calls_stream_is_related_to_that_call(conformance_port: int) -> None:
    with anyio.fail_after(15):
        async with opened(f"http://127.0.0.1:{conformance_port}/mcp") as link:
            await handshake(link)
            await link.send(call(CALL_ID, "test_sampling", {"prompt": "hello"}))
            question, related = await link.receive()
            while question.get("method") != "sampling/createMessage":  # e.g. a priming event's nothing
                question, related = await link.receive()
            assert related == CALL_ID
            assert "id" in question
            sampled = {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}
            await link.send(answer(question["id"], sampled))
            (reply, related), *_ = await until_answer(link, CALL_ID)
    assert related == CALL_ID
    assert text_of(reply) == "LLM response: hi"


async def test_a_calls_stream_the_server_closes_early_is_resumed_with_last_event_id(
    conformance_port: int,
) -> None:
    async with recorded(conformance_port) as relay:
        with anyio.fail_after(15):
            async with opened(f"http://127.0.0.1:{relay.port}/mcp") as link:
                await handshake(link)
                await link.send(call(CALL_ID, "test_reconnection", {}))
                (reply, related), *_ = await until_answer(link, CALL_ID)
    assert (text_of(reply), related) == ("Reconnection test completed", CALL_ID)
    resumed = [r for r in relay.requests() if r.method == "GET" and "last-event-id" in r.headers]
    assert len(resumed) == 1
    assert resumed[0].headers["last-event-id"]
    assert resumed[0].headers["mcp-session-id"] == link.session_id


async def test_closing_deletes_the_session_and_leaves_no_connection_open(fixture_port: int) -> None:
    async with recorded(fixture_port) as relay:
        with anyio.fail_after(15):
            async with opened(f"http://127.0.0.1:{relay.port}/mcp") as link:
                await handshake(link)
                await link.send(call(CALL_ID, "echo", {"text": "x"}))
                await until_answer(link, CALL_ID)
                session = link.session_id
                await link.close()
                with pytest.raises(LinkClosed):
                    await link.receive()
                while relay.open:
                    await anyio.sleep(0.02)
    deletes = [r for r in relay.requests() if r.method == "DELETE"]
    assert [r.headers.get("mcp-session-id") for r in deletes] == [session]
    with pytest.raises(LinkClosed):
        await link.send(call(3, "echo", {"text": "after"}))


async def test_concurrent_calls_reuse_the_pools_connections(fixture_port: int) -> None:
    concurrency, waves = 32, 4
    async with recorded(fixture_port) as relay:
        upstream = ServerConfig(
            name="streamable",
            transport="http",
            url=f"http://127.0.0.1:{relay.port}/mcp",
            health=HealthConfig(interval_seconds=60),
        )
        async with started(upstream) as connection:
            link = connection.link
            assert isinstance(link, StreamableHttpLink)

            async def echo(text: str) -> None:
                reply = await connection.request(
                    "tools/call", {"name": "echo", "arguments": {"text": text}}, timeout=10
                )
                assert text_of(reply) == text

            with anyio.fail_after(30):
                for wave in range(waves):
                    async with anyio.create_task_group() as group:
                        for n in range(concurrency):
                            group.start_soon(echo, f"{wave}-{n}")
            opened_count = link.connections_opened
    # one connection per call in flight, one for the GET stream, and a few the server closed
    assert concurrency <= opened_count <= concurrency + 4
    assert relay.accepted == opened_count


async def test_a_log_line_reaches_only_the_caller_whose_call_produced_it(fixture_port: int) -> None:
    heard: dict[str, list[dict[str, Any]]] = {"log": [], "sleep": []}

    def listener(name: str) -> Any:
        async def notify(message: dict[str, Any]) -> None:
            heard[name].append(message)

        return notify

    with anyio.fail_after(15):
        async with opened(f"http://127.0.0.1:{fixture_port}/mcp") as link:
            connection = Connection(link)
            async with anyio.create_task_group() as group:
                group.start_soon(connection.run)
                await connection.initialize(10)

                async def sleeping() -> None:
                    await connection.request(
                        "tools/call",
                        {"name": "sleep", "arguments": {"seconds": 0.3}},
                        timeout=10,
                        notify=listener("sleep"),
                    )

                async with anyio.create_task_group() as calls:
                    calls.start_soon(sleeping)
                    while connection.inflight == 0:  # the sleep call is in flight: two callers now
                        await anyio.sleep(0.005)
                    await connection.request(
                        "tools/call",
                        {"name": "log", "arguments": {"message": "mine"}},
                        timeout=10,
                        notify=listener("log"),
                    )
                    assert connection.inflight == 1
                await link.close()
    assert [m["params"]["data"] for m in heard["log"]] == ["mine"]
    assert heard["sleep"] == []


# ---- against a scripted server ---------------------------------------------------------------------


async def test_a_404_on_a_session_is_the_error_session_terminated() -> None:
    async def gone(request: Request, reply: Reply) -> None:
        await reply.send(404)

    async with scripted(mcp(gone)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
            # the session is gone: the link ends, so that the supervisor starts a new one
            with pytest.raises(LinkClosed):
                await link.receive()
    assert error["code"] == -32600
    assert error["message"] == "Session terminated"
    assert link.closed_reason is not None


async def test_a_404_before_a_session_is_the_error_not_found() -> None:
    async def missing(request: Request, reply: Reply) -> None:
        await reply.send(404)

    async with scripted(missing) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            error = await error_for(
                link, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}
            )
    assert error["code"] == -32601
    assert link.session_id is None


async def test_an_http_error_carrying_a_json_rpc_error_gives_that_error_for_the_request() -> None:
    async def refuse(request: Request, reply: Reply) -> None:
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "bad arguments"}}
        await reply.json(body, status=400)

    async with scripted(mcp(refuse)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
    assert error == {"code": -32602, "message": "bad arguments"}


async def test_an_http_error_without_a_json_rpc_error_is_an_internal_error() -> None:
    async def broken(request: Request, reply: Reply) -> None:
        await reply.send(500, [("content-type", "text/plain")], b"oops")

    async with scripted(mcp(broken)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
            # the connection stays usable: the next request's error comes the same way
            again = await error_for(link, call(3, "echo", {"text": "x"}))
    assert error["code"] == again["code"] == -32603


@pytest.mark.parametrize(
    ("status", "content_type"),
    [(202, "application/json"), (200, "text/html"), (200, "")],
    ids=["202-accepted", "text-html", "no-content-type"],
)
async def test_a_request_answered_202_or_with_an_unexpected_content_type_is_an_invalid_request(
    status: int, content_type: str
) -> None:
    async def odd(request: Request, reply: Reply) -> None:
        headers = [("content-type", content_type)] if content_type else []
        await reply.send(status, headers, b"")

    async with scripted(mcp(odd)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
    assert error["code"] == -32600


@pytest.mark.parametrize("status", [307, 308])
async def test_a_same_origin_redirect_is_followed(status: int) -> None:
    async def moved(request: Request, reply: Reply) -> None:
        if request.target == "/mcp":
            await reply.send(status, [("location", "/moved?x=1")])
        else:
            await reply.json(answer(request.message()["id"], {"content": [{"type": "text", "text": "ok"}]}))

    async with scripted(mcp(moved)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            message = call(CALL_ID, "echo", {"text": "x"})
            await link.send(message)
            (reply, related), *_ = await until_answer(link, CALL_ID)
            await link.send(call(3, "echo", {"text": "y"}))
            await until_answer(link, 3)
    assert (text_of(reply), related) == ("ok", CALL_ID)
    first, second, *later = posts(server, "tools/call")
    assert (first.target, second.target) == ("/mcp", "/moved?x=1")
    assert second.message() == message
    assert second.headers["mcp-session-id"] == SESSION
    # a 308 is permanent: the next request goes to the new location at once; a 307 is not
    expected = ["/moved?x=1"] if status == 308 else ["/mcp", "/moved?x=1"]
    assert [r.target for r in later] == expected


@pytest.mark.parametrize("where", ["other-origin", "302-same-origin"])
async def test_a_redirect_that_is_not_followed_is_an_error_naming_the_location(where: str) -> None:
    async def elsewhere(request: Request, reply: Reply) -> None:
        await reply.json(answer(request.message()["id"], {"content": []}))

    async with scripted(elsewhere) as other:
        location = other.url if where == "other-origin" else "/moved"
        status = 307 if where == "other-origin" else 302

        async def moved(request: Request, reply: Reply) -> None:
            await reply.send(status, [("location", location)])

        async with scripted(mcp(moved)) as server, opened(server.url) as link:
            with anyio.fail_after(5):
                await handshake(link)
                error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
        assert error["code"] == -32600
        assert location in error["message"]
        assert len(posts(server, "tools/call")) == 1
        assert other.requests == []


async def test_an_answer_stream_with_event_ids_that_ends_early_is_resumed_with_last_event_id() -> None:
    async def stream(request: Request, reply: Reply) -> None:
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
        await reply.events(event(id="e0", retry=10) + event(progress, id="e1"))

    async def resume(request: Request, reply: Reply) -> None:
        if "last-event-id" not in request.headers:
            await reply.send(405)  # the session's own GET stream: none here
        else:
            await reply.events(event(answer(CALL_ID, {"content": []}), id="e2"))

    async with scripted(mcp(stream, on_get=resume)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            await link.send(call(CALL_ID, "echo", {"text": "x"}))
            (reply, related), *before = await until_answer(link, CALL_ID)
    assert (reply["result"], related) == ({"content": []}, CALL_ID)
    assert [(m["method"], r) for m, r in before] == [("notifications/progress", CALL_ID)]
    (get,) = [r for r in server.requests if r.method == "GET" and "last-event-id" in r.headers]
    assert get.headers["last-event-id"] == "e1"
    assert get.headers["mcp-session-id"] == SESSION
    assert get.headers["accept"] == "text/event-stream"


async def test_resumed_streams_the_server_ends_cleanly_are_resumed_until_the_answer() -> None:
    async def stream(request: Request, reply: Reply) -> None:
        await reply.events(event(id="e1", retry=10))

    async def poll(request: Request, reply: Reply) -> None:
        if "last-event-id" not in request.headers:
            await reply.send(405)
            return
        number = len([r for r in server.requests if "last-event-id" in r.headers])
        if number <= 3:  # more clean ends than reconnection attempts: SSE polling
            await reply.events(event(id=f"r{number}", retry=10))
        else:
            await reply.events(event(answer(CALL_ID, {"content": []}), id="done"))

    async with scripted(mcp(stream, on_get=poll)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            await link.send(call(CALL_ID, "echo", {"text": "x"}))
            (reply, related), *_ = await until_answer(link, CALL_ID)
    assert (reply["result"], related) == ({"content": []}, CALL_ID)
    resumes = [r.headers["last-event-id"] for r in server.requests if "last-event-id" in r.headers]
    assert resumes == ["e1", "r1", "r2", "r3"]  # each from the last id seen


async def test_resuming_gives_up_after_two_failed_attempts_in_a_row() -> None:
    async def stream(request: Request, reply: Reply) -> None:
        await reply.events(event(id="e1", retry=10))

    async def unavailable(request: Request, reply: Reply) -> None:
        await reply.send(405 if "last-event-id" not in request.headers else 503)

    async with scripted(mcp(stream, on_get=unavailable)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
    assert error["code"] == -32000
    resumes = [r.headers["last-event-id"] for r in server.requests if "last-event-id" in r.headers]
    assert resumes == ["e1", "e1"]


@pytest.mark.parametrize("event_id", [None, "caf\u00e9", "a\x01b"], ids=["none", "not-ascii", "control"])
async def test_an_answer_stream_without_usable_event_ids_that_ends_early_is_an_error(
    event_id: str | None,
) -> None:
    async def stream(request: Request, reply: Reply) -> None:
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
        await reply.events(event(progress, id=event_id))

    async with scripted(mcp(stream)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
    assert error["code"] == -32000
    assert [r for r in server.requests if "last-event-id" in r.headers] == []


async def test_a_connection_lost_mid_answer_fails_that_request_only() -> None:
    async def flaky(request: Request, reply: Reply) -> None:
        if request.message()["id"] == CALL_ID:
            await reply.head(200, [("content-type", "text/event-stream")])
            reply.close()
        else:
            await reply.json(answer(request.message()["id"], {"content": []}))

    async with scripted(mcp(flaky)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
            await link.send(call(3, "echo", {"text": "y"}))
            (reply, related), *_ = await until_answer(link, 3)
    assert error["code"] == -32000
    assert (reply["result"], related) == ({"content": []}, 3)
    assert link.closed_reason == "stopped"


async def test_an_event_larger_than_the_limit_fails_its_request_and_drops_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streamable, "MAX_BODY_BYTES", 4096)

    async def huge(request: Request, reply: Reply) -> None:
        message_id = request.message()["id"]
        if message_id == CALL_ID:
            await reply.events(event(answer(message_id, {"content": [], "padding": "x" * 8192})))
        else:
            await reply.events(event(answer(message_id, {"content": []})))

    async with scripted(mcp(huge)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
            (dropped,) = [r.connection for r in posts(server, "tools/call")]
            await link.send(call(3, "echo", {"text": "y"}))
            (reply, _), *_ = await until_answer(link, 3)
    assert error["code"] == -32000
    assert reply["result"] == {"content": []}
    assert posts(server, "tools/call")[1].connection != dropped


async def test_a_json_answer_larger_than_the_limit_is_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamable, "MAX_BODY_BYTES", 4096)

    async def huge(request: Request, reply: Reply) -> None:
        await reply.json(answer(request.message()["id"], {"padding": "x" * 8192}))

    async with scripted(mcp(huge)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            error = await error_for(link, call(CALL_ID, "echo", {"text": "x"}))
    assert error["code"] == -32700


async def test_the_get_stream_carries_unrelated_messages() -> None:
    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}

    async def listen(request: Request, reply: Reply) -> None:
        await reply.head(200, [("content-type", "text/event-stream")])
        await reply.write(event(changed, id="g1"))
        await reply.until_closed()

    async def unused(request: Request, reply: Reply) -> None:
        raise AssertionError("no request is sent")

    async with scripted(mcp(unused, on_get=listen)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            message, related = await link.receive()
    assert (message, related) == (changed, None)
    (get,) = [r for r in server.requests if r.method == "GET"]
    assert get.headers["mcp-session-id"] == SESSION
    assert "last-event-id" not in get.headers


async def test_a_get_stream_answered_405_is_not_asked_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamable, "RECONNECT_DELAY_SECONDS", 0.01)

    async def unused(request: Request, reply: Reply) -> None:
        raise AssertionError("no request is sent")

    async with scripted(mcp(unused)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            await server.wait_for(lambda r: r.method == "GET")
            await anyio.sleep(0.3)  # thirty reconnection delays
    assert len([r for r in server.requests if r.method == "GET"]) == 1


async def test_a_failing_get_stream_is_asked_for_twice_then_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamable, "RECONNECT_DELAY_SECONDS", 0.01)

    async def fails(request: Request, reply: Reply) -> None:
        await reply.send(500)

    async with scripted(mcp(fails, on_get=fails)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            await server.wait_for(lambda r: r.method == "GET", count=2)
            await anyio.sleep(0.3)
    assert len([r for r in server.requests if r.method == "GET"]) == 2


async def test_the_negotiated_version_and_configured_headers_ride_on_later_requests() -> None:
    older = "2025-06-18"

    async def initialize_older(request: Request, reply: Reply) -> None:
        if request.method != "POST":
            await reply.send(200)
            return
        message = request.message()
        result = {**SERVER_INFO, "protocolVersion": older} if message["method"] == "initialize" else {}
        await reply.json(answer(message["id"], result), [("mcp-session-id", SESSION)])

    configured = {"Authorization": "Bearer t0ken", "Mcp-Session-Id": "forged", "Host": "evil.example"}
    async with scripted(initialize_older) as server, opened(server.url, configured) as link:
        with anyio.fail_after(5):
            await link.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
            await until_answer(link, 1)
            await link.send({"jsonrpc": "2.0", "id": CALL_ID, "method": "ping"})
            await until_answer(link, CALL_ID)
    first, second = posts(server, "initialize") + posts(server, "ping")
    assert link.protocol_version == older
    assert second.headers["mcp-protocol-version"] == older
    assert "mcp-protocol-version" not in first.headers
    for request in (first, second):
        assert request.headers["authorization"] == "Bearer t0ken"
        assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert "mcp-session-id" not in first.headers
    assert second.headers["mcp-session-id"] == SESSION


async def test_a_notification_is_sent_once_the_upstream_accepted_it_even_through_a_redirect() -> None:
    accept = anyio.Event()

    async def handle(request: Request, reply: Reply) -> None:
        if request.target == "/mcp":
            await reply.send(307, [("location", "/moved")])
            return
        await accept.wait()
        await reply.send(202)

    sent = anyio.Event()

    async def notify(link: StreamableHttpLink) -> None:
        await link.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})
        sent.set()

    async with scripted(handle) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(notify, link)
                await server.wait_for(lambda r: r.target == "/moved")
                assert not sent.is_set()  # the upstream has not answered it yet
                accept.set()
                await sent.wait()
    assert [r.target for r in server.requests] == ["/mcp", "/moved"]
    assert server.requests[0].body == server.requests[1].body


async def test_user_info_in_the_url_is_sent_as_basic_authorization() -> None:
    async def ping(request: Request, reply: Reply) -> None:
        await reply.json(answer(request.message()["id"], {}))

    async with scripted(mcp(ping)) as server:
        url = f"http://us%40er:p%3Ass@127.0.0.1:{server.port}/mcp"
        async with opened(url) as link:
            with anyio.fail_after(5):
                await handshake(link)
    for request in server.requests:
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"us@er:p:ss").decode()


async def test_a_configured_user_agent_replaces_the_links_own() -> None:
    async def ping(request: Request, reply: Reply) -> None:
        await reply.json(answer(request.message()["id"], {}))

    async with scripted(mcp(ping)) as server, opened(server.url, {"User-Agent": "agent/1"}) as link:
        with anyio.fail_after(5):
            await handshake(link)
    (initialize,) = posts(server, "initialize")
    assert initialize.headers["user-agent"] == "agent/1"


@pytest.mark.parametrize("version", ["2025-11-25\u20ac", "2025-11-25\r\nx-injected: 1"], ids=["euro", "crlf"])
async def test_a_protocol_version_that_cannot_go_in_a_header_is_not_sent(version: str) -> None:
    async def initialize_odd(request: Request, reply: Reply) -> None:
        if request.method != "POST":
            await reply.send(405)
            return
        message = request.message()
        if "id" not in message:
            await reply.send(202)
            return
        result = {**SERVER_INFO, "protocolVersion": version} if message["method"] == "initialize" else {}
        await reply.json(answer(message["id"], result), [("mcp-session-id", SESSION)])

    async with scripted(initialize_odd) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            await link.send({"jsonrpc": "2.0", "id": CALL_ID, "method": "ping"})
            (reply, related), *_ = await until_answer(link, CALL_ID)
    assert (reply["result"], related) == ({}, CALL_ID)
    (ping,) = posts(server, "ping")
    assert ping.headers["mcp-session-id"] == SESSION
    assert "mcp-protocol-version" not in ping.headers


@pytest.mark.parametrize(
    "session", ["has space", "caf\xe9", "", "x" * 300], ids=["space", "latin-1", "empty", "too-long"]
)
async def test_an_invalid_session_id_is_ignored(session: str) -> None:
    async def ping(request: Request, reply: Reply) -> None:
        await reply.json(answer(request.message()["id"], {}))

    async with scripted(mcp(ping, session=session)) as server, opened(server.url) as link:
        with anyio.fail_after(5):
            await handshake(link)
            await link.send({"jsonrpc": "2.0", "id": CALL_ID, "method": "ping"})
            await until_answer(link, CALL_ID)
    assert link.session_id is None
    assert all("mcp-session-id" not in r.headers for r in server.requests)
    assert [r for r in server.requests if r.method in ("GET", "DELETE")] == []


async def test_a_refused_connection_closes_the_link_with_a_connection_failed_reason() -> None:
    port = free_port()  # nothing listens there
    link = StreamableHttpLink(f"http://user:s3cret@127.0.0.1:{port}/mcp?token=t0ken", {}, connect_timeout=5)
    connection = Connection(link)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(connection.run)
            with pytest.raises(UpstreamGone):
                await connection.initialize(5)
        with pytest.raises(LinkClosed) as closed:
            await link.receive()
        await link.close()
    assert str(closed.value).startswith("connection failed")
    assert "s3cret" not in str(closed.value)  # the URL's credentials stay out of the reason
    assert "t0ken" not in str(closed.value)
    assert link.closed_reason == str(closed.value)
    assert connection.closed_reason == str(closed.value)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://127.0.0.1:1/mcp", {"X-Token": "a\r\nInjected: yes"}),
        ("http://127.0.0.1:1/mcp", {"X-Token": "a\nb"}),
        ("http://127.0.0.1:1/mcp", {"X-Token\r\nInjected": "yes"}),
        ("http://127.0.0.1:1/mcp", {"Bad Name": "v"}),
        ("http://127.0.0.1:1/mcp", {"": "v"}),
        ("http://127.0.0.1:1/mcp", {"X-Token": "\u20ac"}),
        ("ftp://127.0.0.1/mcp", {}),
        ("http://127.0.0.1:99999/mcp", {}),
    ],
    ids=["crlf-value", "lf-value", "crlf-name", "space-name", "empty-name", "not-latin-1", "ftp", "bad-port"],
)
async def test_a_link_that_would_send_a_broken_request_is_refused_at_construction(
    url: str, headers: dict[str, str]
) -> None:
    with pytest.raises(SpawnError):
        StreamableHttpLink(url, headers)
