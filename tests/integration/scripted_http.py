"""A small HTTP/1.1 server whose answers each test scripts, for what real MCP servers cannot be made
to do (a 404 on a session, a redirect, an event stream that stops early): it reads real requests off
the socket, records them, and writes real responses, so the client under test meets the wire format
as it is. Also a TCP relay that records what clients write through it (to see the headers a real
upstream was sent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.integration.test_upstream_keepalive import Relay


def event(message: Any = None, *, id: str | None = None, retry: int | None = None) -> bytes:
    """One server-sent event carrying `message` as JSON (none: a priming event)."""
    lines = [] if id is None else [f"id: {id}"]
    lines += [] if retry is None else [f"retry: {retry}"]
    lines += [] if message is None else [f"data: {json.dumps(message)}"]
    return ("\n".join(lines) + "\n\n").encode()


_REASONS = {200: "OK", 202: "Accepted", 307: "Temporary Redirect", 308: "Permanent Redirect"}


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    connection: int = 0  # which accepted connection carried it (1, 2, …)

    def message(self) -> Any:
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value  # as HTTP joins them
    return method, target, headers


def parse_requests(data: bytes, connection: int = 0) -> list[Request]:
    """The requests in what a client wrote on one connection (bodies framed by content-length)."""
    requests = []
    while (end := data.find(b"\r\n\r\n")) >= 0:
        method, target, headers = parse_head(data[:end])
        length = int(headers.get("content-length", "0"))
        body, data = data[end + 4 : end + 4 + length], data[end + 4 + length :]
        requests.append(Request(method, target, headers, body, connection))
    return requests


class Reply:
    """The response to one request, written on its connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def send(self, status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        """A whole response, framed by content-length."""
        await self.head(status, [*headers, ("content-length", str(len(body)))])
        await self.write(body)

    async def json(self, message: Any, headers: Iterable[tuple[str, str]] = (), status: int = 200) -> None:
        body = json.dumps(message).encode()
        await self.send(status, [("content-type", "application/json"), *headers], body)

    async def events(self, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A whole event stream, framed by content-length (it ends with the response)."""
        await self.send(200, [("content-type", "text/event-stream"), *headers], body)

    async def head(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """The status line and headers; without content-length the body runs until `close`."""
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        await self.write(("".join(lines) + "\r\n").encode("latin-1"))

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    async def until_closed(self) -> None:
        """Hold the response open until the client closes the connection."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass


Handler = Callable[[Request, Reply], Awaitable[None]]


class ScriptedServer:
    """Serves each request on a kept-alive connection with `handler` (which may close it)."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.requests: list[Request] = []
        self.accepted = 0
        self.open: set[asyncio.StreamWriter] = set()
        self.serving: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []
        self.port = 0
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def wait_for(self, predicate: Callable[[Request], bool], count: int = 1) -> list[Request]:
        """The requests matching `predicate`, once there are `count` of them (bound the wait)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len([r for r in self.requests if predicate(r)]) >= count)
        return [r for r in self.requests if predicate(r)]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        self.open.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        try:
            while not writer.is_closing():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, target, headers = parse_head(head[:-4])
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(method, target, headers, body, number)
                async with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
                try:
                    await self.handler(request, Reply(reader, writer))
                except ConnectionError:
                    return
        except Exception as exc:  # a broken script fails the test (see `scripted`), not silently
            self.errors.append(exc)
        finally:
            self.open.discard(writer)
            self.serving.discard(task)
            writer.close()

    async def stop(self) -> None:
        """Close every connection and wait until each one's handling has ended."""
        for writer in list(self.open):
            writer.close()
        await _finish(self.serving)


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[ScriptedServer]:
    """A `ScriptedServer` listening on 127.0.0.1 while the block runs."""
    scripted_server = ScriptedServer(handler)
    server = await asyncio.start_server(scripted_server.serve, "127.0.0.1", 0)
    scripted_server.port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield scripted_server
    finally:
        server.close()
        await scripted_server.stop()
    assert not scripted_server.errors, scripted_server.errors


@dataclass
class RecordingRelay(Relay):
    """A `Relay` that also keeps what each client wrote, to read the requests it carried."""

    written: dict[asyncio.StreamReader, bytearray] = field(default_factory=dict)
    clients: set[asyncio.StreamWriter] = field(default_factory=set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.written[reader] = bytearray()
        self.clients.add(writer)
        try:
            await super()._serve(reader, writer)
        finally:
            writer.close()

    async def stop(self) -> None:
        """Close what clients left open and wait until every pipe has ended."""
        for writer in list(self.clients):
            writer.close()
        await _finish(self.open)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = self.written.get(reader)
        if record is None:
            await super()._pipe(reader, writer)
            return
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                record += data
                writer.write(data)
                await writer.drain()
        writer.close()

    def requests(self) -> list[Request]:
        """Every request written through the relay, connection by connection."""
        found = []
        for number, data in enumerate(self.written.values(), 1):
            found += parse_requests(bytes(data), number)
        return found


@asynccontextmanager
async def recorded(upstream: int) -> AsyncIterator[RecordingRelay]:
    relay = RecordingRelay(upstream)
    server = await asyncio.start_server(relay._serve, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield relay
    finally:
        server.close()
        await relay.stop()


async def _finish(tasks: set[asyncio.Task[None]]) -> None:
    """Wait a moment for `tasks` to end on their own, then cancel what is left."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=2.0)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
