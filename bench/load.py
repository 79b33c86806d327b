"""Load generation: N concurrent MCP client sessions calling one tool, bounded by count and time.

Two clients speak the same wire protocol. `RawSession` posts JSON-RPC with httpx2 itself (the
handshake of the era, then `tools/call`; answers parsed from JSON or SSE) and is the default: it
costs the load generator a fraction of what the SDK client costs per call, so more of the two cores
go to the server under test. `SdkSession` is the official `mcp.Client`, for comparison (`--client sdk`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
CALL_SECONDS = 30.0
CLIENT_INFO = {"name": "mcpctl-bench", "version": "1"}


class CallFailed(RuntimeError):
    """A call answered with an error, an unexpected result, or not at all."""


class Session(Protocol):
    async def call(self, text: str) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where to send calls: the MCP URL, the bearer (None: no auth), and the tool's name there."""

    name: str
    url: str
    token: str | None
    tool: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Transport(Protocol):
    async def request(self, method: str, headers: dict[str, str], body: bytes = b"") -> Reply: ...


class HttpxTransport:
    """Requests through an httpx2 client (its connection pool, h11 parsing)."""

    def __init__(self, http: httpx2.AsyncClient, url: str):
        self.http, self.url = http, url

    async def request(self, method: str, headers: dict[str, str], body: bytes = b"") -> Reply:
        answer = await self.http.request(method, self.url, content=body, headers=headers)
        return Reply(answer.status_code, dict(answer.headers), answer.content)


class WireTransport:
    """HTTP/1.1 on one keep-alive connection, written and parsed here: a request is a write and a
    few buffered reads, so the load generator spends its CPU on sending load, not on an HTTP stack.
    Enough HTTP for what uvicorn answers (Content-Length or chunked bodies); reconnects when the
    server closes (after an answer, or an idle connection)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.authority = f"{self.host}:{self.port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, headers: dict[str, str], body: bytes = b"") -> Reply:
        if self.reader is not None and self.reader.at_eof():  # closed while idle (Node: after 5 s)
            await self.aclose()
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        lines = [f"{method} {self.path} HTTP/1.1", f"Host: {self.authority}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            found = {}
            for line in head[1:]:
                if line:
                    name, _, value = line.partition(":")
                    found[name.strip().lower()] = value.strip()
            if found.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while size := int((await reader.readline()).split(b";", 1)[0], 16):
                    chunks.append((await reader.readexactly(size + 2))[:-2])
                while (await reader.readline()) not in (b"\r\n", b""):  # trailers
                    pass
                content = b"".join(chunks)
            else:
                content = await reader.readexactly(int(found.get("content-length", "0")))
        except BaseException:
            await self.aclose()
            raise
        if found.get("connection", "").lower() == "close":
            await self.aclose()
        return Reply(status, found, content)

    async def aclose(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class RawSession:
    """One MCP session as plain JSON-RPC POSTs; `era` is "legacy" (2025-11-25: initialize, session
    id, DELETE at the end) or "2026-07-28" (stateless: every request carries the version and routing
    headers and the client's `_meta`)."""

    def __init__(self, transport: Transport, target: Target, era: str):
        self.transport, self.target, self.era = transport, target, era
        self.ids = itertools.count(1)
        self.headers = {**target.headers(), "Accept": ACCEPT, "Content-Type": "application/json"}
        self.meta: dict[str, Any] = {}

    async def open(self) -> None:
        if self.era != "legacy":
            self.headers["MCP-Protocol-Version"] = self.era
            self.meta = {
                "io.modelcontextprotocol/protocolVersion": self.era,
                "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            return
        hello = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}
        answer = await self.transport.request("POST", self.headers, self._body("initialize", hello, 0))
        _result(answer, 0)
        session = answer.headers.get("mcp-session-id")
        if session:
            self.headers["Mcp-Session-Id"] = session
        self.headers["MCP-Protocol-Version"] = LEGACY
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        done = await self.transport.request("POST", self.headers, note)
        if done.status != 202:
            raise CallFailed(f"notifications/initialized → HTTP {done.status}")

    async def call(self, text: str) -> None:
        params: dict[str, Any] = {"name": self.target.tool, "arguments": {"text": text}}
        headers = self.headers
        if self.meta:
            params["_meta"] = self.meta
            headers = {**headers, "Mcp-Method": "tools/call", "Mcp-Name": self.target.tool}
        request_id = next(self.ids)
        answer = await self.transport.request("POST", headers, self._body("tools/call", params, request_id))
        _check_echo(_result(answer, request_id), text)

    async def close(self) -> None:
        if "Mcp-Session-Id" in self.headers:
            await self.transport.request("DELETE", self.headers)

    @staticmethod
    def _body(method: str, params: dict[str, Any], request_id: int) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode()


def _result(answer: Reply, request_id: int) -> dict[str, Any]:
    """The JSON-RPC result for `request_id`, from a JSON body or from the SSE events of the body."""
    if answer.status != 200:
        raise CallFailed(f"HTTP {answer.status}: {answer.body[:200]!r}")
    text = answer.body.decode()
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [_sse_message(event) for event in text.replace("\r\n", "\n").split("\n\n")]
    else:
        messages = [json.loads(text)]
    for message in messages:
        if isinstance(message, dict) and message.get("id") == request_id:
            if "error" in message:
                raise CallFailed(f"JSON-RPC error {message['error']}")
            result: dict[str, Any] = message["result"]
            return result
    raise CallFailed(f"no answer to request {request_id}")


def _sse_message(event: str) -> Any:
    data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
    return json.loads(data) if data else None


def _check_echo(result: dict[str, Any], text: str) -> None:
    content = result.get("content") or [{}]
    if result.get("isError") or content[0].get("text") != text:
        raise CallFailed(f"unexpected result {str(result)[:200]}")


class SdkSession:
    """The official SDK client on its own httpx2 client."""

    def __init__(self, client: Client, tool: str):
        self.client, self.tool = client, tool

    async def call(self, text: str) -> None:
        result = await self.client.call_tool(self.tool, {"text": text})
        got = getattr(result.content[0], "text", None) if result.content else None
        if result.is_error or got != text:
            raise CallFailed(f"unexpected result {result!r:.200}")


async def open_session(stack: AsyncExitStack, target: Target, era: str, kind: str) -> Session:
    if kind == "wire":
        wire = WireTransport(target.url)
        stack.push_async_callback(wire.aclose)
        session = RawSession(wire, target, era)
        await session.open()
        stack.push_async_callback(session.close)
        return session
    http = await stack.enter_async_context(
        httpx2.AsyncClient(headers=target.headers(), timeout=CALL_SECONDS, trust_env=False)
    )
    if kind == "sdk":
        transport = streamable_http_client(target.url, http_client=http)
        client = await stack.enter_async_context(Client(transport, mode=era))  # type: ignore[arg-type]
        return SdkSession(client, target.tool)
    raw = RawSession(HttpxTransport(http, target.url), target, era)
    await raw.open()
    stack.push_async_callback(raw.close)
    return raw


@dataclass
class Level:
    """What one (target, concurrency) run measured; latencies in seconds."""

    target: str
    concurrency: int
    elapsed: float = 0.0
    errors: int = 0
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest rank, in milliseconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


async def run_level(
    target: Target,
    era: str,
    kind: str,
    concurrency: int,
    *,
    count: int,
    seconds: float,
    warmup: int,
    window: contextlib.AbstractContextManager[Any] | None = None,
) -> Level:
    """Open `concurrency` sessions, warm each up, then call until `count` calls were issued or
    `seconds` passed, whichever comes first (calls in flight at the deadline are finished).
    `window` is entered around the measured calls only (e.g. a CPU meter: not the handshakes)."""
    level = Level(target.name, concurrency)
    async with AsyncExitStack() as stack:
        sessions = [await open_session(stack, target, era, kind) for _ in range(concurrency)]
        rounds = max(1, math.ceil(warmup / concurrency))
        async with anyio.create_task_group() as group:
            for worker, session in enumerate(sessions):
                group.start_soon(_warm, session, f"warm{worker}", rounds)
        issued = 0
        start = time.perf_counter()
        deadline = start + seconds

        def more() -> bool:
            nonlocal issued
            if issued >= count or time.perf_counter() >= deadline:
                return False
            issued += 1
            return True

        with anyio.fail_after(seconds + CALL_SECONDS), window or contextlib.nullcontext():
            async with anyio.create_task_group() as group:
                for worker, session in enumerate(sessions):
                    group.start_soon(_worker, session.call, f"w{worker}", more, level)
            level.elapsed = time.perf_counter() - start
    return level


async def _warm(session: Session, name: str, rounds: int) -> None:
    for n in range(rounds):
        await session.call(f"{name}-{n}")


async def _worker(
    call: Callable[[str], Awaitable[None]], name: str, more: Callable[[], bool], level: Level
) -> None:
    n = 0
    while more():
        n += 1
        began = time.perf_counter()
        try:
            await call(f"{name}-{n}")
        except Exception as exc:  # a benchmark counts failures instead of stopping at the first
            level.errors += 1
            level.first_error = level.first_error or f"{type(exc).__name__}: {exc}"
            continue
        level.latencies.append(time.perf_counter() - began)
