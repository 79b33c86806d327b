"""mcpd's end of the data-plane link (`core/link_protocol.py`): split-mode mcplocal's calls run here
through the very plane the embedded endpoint uses, so split mode gives a client exactly what embedded
mode gives — progress, log lines, sampling/elicitation/roots asked of the caller's client,
cancellation, the 2026-07-28 pass-through, upstream failures — and hears what embedded sessions hear
(notifications outside requests, configuration changes, tokens that end).

Tokens are authenticated on a link once (`auth`), kept by hash, and dropped when the configuration
changes (mcplocal authenticates again on its next call, so reach and bindings are always current) or
when the token ends. Each call is authorized against the token's reach in memory: no database work
on the hot path. tools/call, resources/read and prompts/get are audited here, where the database is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mcp_types import INTERNAL_ERROR

from mcpctl.core import link_protocol as wire
from mcpctl.core import tokens
from mcpctl.mcpd.auth import introspection
from mcpctl.mcpd.call_audit import call_record, downstream_session, outcome_of
from mcpctl.mcplocal.ports import (
    UPSTREAM_UNAVAILABLE,
    AuditRecord,
    Caller,
    ControlPlane,
    ControlPlaneUnavailable,
    Message,
    UpstreamFailure,
)

logger = logging.getLogger(__name__)

# A link may hold this many calls in flight (mcplocal bounds its callers far below).
MAX_CALLS_PER_LINK = 4096
# A link that presents this many refused tokens in a row is closed (nothing to guess: tokens are random).
MAX_REFUSED_IN_A_ROW = 100
POLICY_VIOLATION = 1008


class Socket(Protocol):
    """The accepted WebSocket (Starlette's)."""

    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Closed(Exception):
    """The peer went away."""


@dataclass(eq=False)  # one per socket: hashed by identity
class _Link:
    socket: Socket
    client_addr: str | None
    tokens: dict[str, Caller] = field(default_factory=dict)  # token sha → the caller it authenticated
    # the tokens authenticated since the configuration last changed: only these may call (the others
    # still route events, by the reach they had, until mcplocal authenticates them again)
    current: set[str] = field(default_factory=set)
    calls: dict[Any, asyncio.Task[None]] = field(default_factory=dict)
    asks: dict[int, asyncio.Future[Message]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_ask: int = 0
    refused_in_a_row: int = 0
    closed: bool = False

    async def send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            raise Closed
        text = wire.encode(frame)
        async with self.lock:
            try:
                await self.socket.send_text(text)
            except Exception as exc:  # the socket is gone (the library's own exception types vary)
                self.closed = True
                raise Closed from exc

    async def send_quietly(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(Closed):
            await self.send(frame)

    def reaches(self, server: str) -> bool:
        return any(caller.may_use(server) for caller in self.tokens.values())


class LinkHub:
    """Every open link of this mcpd, and what they are told."""

    def __init__(
        self,
        plane: ControlPlane,
        audit: Callable[[AuditRecord], None],
        durable: Callable[[], Awaitable[None]] | None = None,
    ):
        self.plane, self.audit, self.durable = plane, audit, durable
        self.links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        plane.watch(self._on_server_event)

    # ---- what every link hears ---------------------------------------------------------------------

    def tokens_ended(self, token_shas: list[str] | tuple[str, ...]) -> None:
        for link in list(self.links):
            for sha in token_shas:
                link.current.discard(sha)
                if link.tokens.pop(sha, None) is not None:
                    self._spawn(link.send_quietly({"t": wire.ENDED, "token": sha}))

    def configuration_changed(self) -> None:
        """Reach and bindings may have changed: every token authenticates again on its next call."""
        for link in list(self.links):
            link.current.clear()
            self._spawn(link.send_quietly({"t": wire.CHANGED}))

    async def _on_server_event(self, server: str, message: Message) -> None:
        frame = {"t": wire.EVENT, "server": server, "message": message}
        for link in list(self.links):
            if link.reaches(server):
                await link.send_quietly(frame)

    def close_all_soon(self) -> None:
        """Close every link (thread- and signal-safe): mcpd is shutting down; mcplocal reconnects to
        whichever mcpd answers."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: self._spawn(self.close_all()))

    async def close_all(self) -> None:
        for link in list(self.links):
            link.closed = True
            with contextlib.suppress(Exception):
                await link.socket.close(wire.GOING_AWAY, "mcpd is shutting down")

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- one link ------------------------------------------------------------------------------------

    async def serve(self, socket: Socket, client_addr: str | None) -> None:
        """Read the link's frames until it closes; then cancel what it still has running."""
        self._loop = asyncio.get_running_loop()
        link = _Link(socket, client_addr)
        self.links.add(link)
        try:
            while True:
                try:
                    text = await socket.receive_text()
                except Exception:  # disconnected (Starlette raises WebSocketDisconnect)
                    return
                try:
                    frame = wire.decode(text)
                except wire.BadFrame as exc:
                    logger.warning("data-plane link from %s sent a bad frame: %s", client_addr, exc)
                    continue
                if not await self._dispatch(link, frame):
                    await socket.close(POLICY_VIOLATION, "too many refused tokens")
                    return
        finally:
            link.closed = True
            self.links.discard(link)
            for task in link.calls.values():
                task.cancel()
            for future in link.asks.values():
                if not future.done():
                    future.set_result({"error": {"code": INTERNAL_ERROR, "message": "mcplocal went away"}})

    async def _dispatch(self, link: _Link, frame: dict[str, Any]) -> bool:
        kind = frame["t"]
        if kind == wire.CALL:
            self._call(link, frame)
        elif kind == wire.CANCEL:
            task = link.calls.get(frame.get("id"))
            if task is not None:
                task.cancel()
        elif kind == wire.REPLY:
            future = link.asks.pop(frame.get("ask"), None)  # type: ignore[arg-type]
            message = frame.get("message")
            if future is not None and not future.done():
                future.set_result(message if isinstance(message, dict) else _malformed_reply())
        elif kind == wire.AUTH:
            return await self._authenticate(link, frame)
        return True

    async def _authenticate(self, link: _Link, frame: dict[str, Any]) -> bool:
        bearer = frame.get("bearer")
        reply: dict[str, Any] = {"t": wire.AUTHED, "ask": frame.get("ask")}
        if not isinstance(bearer, str):
            reply["introspection"] = {"ok": False, "reason": "malformed"}
        else:
            try:
                answer = await self.plane.introspect(bearer)
            except ControlPlaneUnavailable as exc:
                reply["unavailable"] = str(exc)
                await link.send_quietly(reply)
                return True
            if answer.ok and answer.principal is not None:
                sha = answer.principal.token_sha or tokens.token_sha(bearer)
                link.tokens[sha] = Caller(answer.principal, "")
                link.current.add(sha)
                link.refused_in_a_row = 0
                reply["introspection"] = introspection(answer.principal, answer.expires_at)
            else:
                link.refused_in_a_row += 1
                reply["introspection"] = {"ok": False, "reason": answer.reason or "unknown"}
        await link.send_quietly(reply)
        return link.refused_in_a_row < MAX_REFUSED_IN_A_ROW

    def _call(self, link: _Link, frame: dict[str, Any]) -> None:
        call_id = frame.get("id")
        if not isinstance(call_id, int) or isinstance(call_id, bool) or call_id in link.calls:
            logger.warning("data-plane link from %s sent a call without a fresh id", link.client_addr)
            return
        if len(link.calls) >= MAX_CALLS_PER_LINK:
            self._spawn(_fail(link, call_id, "too many calls in flight on this link"))
            return
        task = asyncio.create_task(self._run_call(link, call_id, frame))
        link.calls[call_id] = task
        task.add_done_callback(lambda _: link.calls.pop(call_id, None))

    async def _run_call(self, link: _Link, call_id: int, frame: dict[str, Any]) -> None:
        sha = str(frame.get("token"))
        caller = link.tokens.get(sha) if sha in link.current else None
        server, method, params = frame.get("server"), frame.get("method"), frame.get("params")
        if caller is not None and _expired(caller):
            link.tokens.pop(sha, None)
            link.current.discard(sha)
            caller = None
        if caller is None:
            await _fail(
                link, call_id, "the token is not authenticated on this link", wire.TOKEN_NOT_AUTHENTICATED
            )
            return
        if not isinstance(server, str) or not isinstance(method, str):
            await _fail(link, call_id, "a call names a server and a method")
            return
        if params is not None and not isinstance(params, dict):
            await _fail(link, call_id, "params must be an object")
            return
        if not caller.may_use(server):
            await _fail(link, call_id, f'server "{server}" not found')
            return
        timeout = frame.get("timeout")
        timeout = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
        named = frame.get("session")
        upstream = self.plane.upstream(caller, server, named if isinstance(named, str) else None)

        async def notify(message: Message) -> None:
            await link.send({"t": wire.NOTE, "id": call_id, "message": message})

        relay = _asker(link, call_id) if frame.get("relay") else None
        started = time.perf_counter()
        answer: Message | None = None
        try:
            try:
                answer = await upstream.request(method, params, timeout=timeout, notify=notify, relay=relay)
            except UpstreamFailure as exc:
                await _fail(link, call_id, str(exc), code=exc.code)
                return
            except (asyncio.CancelledError, Closed):
                raise
            except Exception:  # boundary: one broken call must not end the link
                logger.exception("data-plane call %s %s failed", server, method)
                await _fail(link, call_id, "internal error in mcpd", code=INTERNAL_ERROR)
                return
        finally:
            audited = self._record(
                link, caller, server, method, params, answer, time.perf_counter() - started, named
            )
        if audited and self.durable is not None:
            await self.durable()  # MCPLOCAL_AUDIT_SPOOL_SYNC: the event is on disk before the answer
        with contextlib.suppress(Closed):
            await link.send({"t": wire.ANSWER, "id": call_id, "message": answer})

    def _record(
        self,
        link: _Link,
        caller: Caller,
        server: str,
        method: str,
        params: Any,
        answer: Message | None,
        seconds: float,
        named: Any,
    ) -> bool:
        event = call_record(
            method,
            params,
            caller.principal,
            project=caller.project,
            server=server,
            outcome=outcome_of(answer),
            seconds=seconds,
            session_id=downstream_session(caller.principal, named if isinstance(named, str) else None),
            request_id=None,
            client_addr=link.client_addr,
        )
        if event is None:
            return False
        self.audit(event)
        return True


def _asker(link: _Link, call_id: int) -> Callable[[Message], Awaitable[Message]]:
    """Ask the caller's client (through mcplocal) on the upstream's behalf; the answer comes back as a
    `reply` frame. The call's own timeout and cancellation bound the wait."""

    async def ask(message: Message) -> Message:
        link.next_ask += 1
        key = link.next_ask
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        link.asks[key] = future
        try:
            await link.send({"t": wire.ASK, "id": call_id, "ask": key, "message": message})
            return await future
        except Closed:
            return {"error": {"code": INTERNAL_ERROR, "message": "mcplocal went away"}}
        finally:
            link.asks.pop(key, None)

    return ask


async def _fail(
    link: _Link, call_id: int, message: str, reason: str | None = None, code: int = UPSTREAM_UNAVAILABLE
) -> None:
    frame: dict[str, Any] = {"t": wire.FAILURE, "id": call_id, "message": message, "code": code}
    if reason is not None:
        frame["reason"] = reason
    await link.send_quietly(frame)


def _expired(caller: Caller) -> bool:
    expires = caller.principal.token_expires_at
    if expires is None:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= datetime.now(UTC)


def _malformed_reply() -> Message:
    return {"error": {"code": INTERNAL_ERROR, "message": "mcplocal sent a malformed reply"}}
