"""mcpd's end of the data-plane link (`core/link_protocol.py`): split-mode mcplocal's calls run here
through the very plane the embedded endpoint uses, so split mode gives a client exactly what embedded
mode gives — progress, log lines, sampling/elicitation/roots asked of the caller's client,
cancellation, the 2026-07-28 pass-through, upstream failures — and hears what embedded sessions hear
(notifications outside requests, configuration changes, tokens that end).

Tokens. A token is authenticated on a link (`auth`) and held by hash for `token_seconds` (the
introspection TTL), so a revocation made on another mcpd replica applies here within that time; a
configuration change makes every token authenticate again before its next call, and mcpd checks
every held token again itself (until then it hears no events; one that stopped working ends) — each
distinct token once per pass, a few at a time, one pass at a time, a burst of changes coalesced into
one more pass, a pass the database failed retried with backoff; a revocation here drops it at
once, cancels its calls in flight, releases its resource subscriptions and tells the link (`ended`).
A check that was under way while any of that happened is done again, never stored stale. Each call
is authorized against the token's reach in memory: no database work on the hot path.

Capacity (DESIGN §12). Nothing mcpd sends on a link waits for its reader: frames go to the link's
own bounded outbox, written by its own task, and a link whose outbox overflows is closed — so a
client that stops reading stalls only itself, never an upstream or another link. A link must present
a valid token within `auth_deadline_seconds`, frames before that are small, links are capped in all
and per address, and refused tokens are throttled per address (charged before their lookup, a few
lookups per address at a time).

tools/call, resources/read and prompts/get are audited here, where the database is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from mcpctl.core import link_protocol as wire
from mcpctl.core import tokens
from mcpctl.core.throttle import FailureThrottle
from mcpctl.core.turns import KeyedTurns
from mcpctl.mcpd.auth import introspection
from mcpctl.mcpd.call_audit import call_record, downstream_session, outcome_of
from mcpctl.mcplocal.ports import (
    UPSTREAM_UNAVAILABLE,
    AuditRecord,
    Caller,
    ControlPlane,
    ControlPlaneUnavailable,
    Introspection,
    Message,
    UpstreamFailure,
)

logger = logging.getLogger(__name__)

POLICY_VIOLATION, TOO_BIG, TRY_AGAIN_LATER = 1008, 1009, 1013
# what an upstream's notifications outside requests may tell a link (as embedded sessions hear them)
EVENT_METHODS = frozenset(
    {
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
        "notifications/resources/updated",
        "notifications/message",
    }
)
SUBSCRIBE, UNSUBSCRIBE, UPDATED = (
    "resources/subscribe",
    "resources/unsubscribe",
    "notifications/resources/updated",
)


@dataclass(frozen=True)
class LinkLimits:
    token_seconds: float = 30.0  # how long an authentication on a link lasts
    auth_deadline_seconds: float = 10.0  # a link must present a valid token within this
    max_links: int = 1024
    max_links_per_address: int = 32
    max_calls_per_link: int = 4096
    max_outbox_bytes: int = 64 * 1024 * 1024  # what mcpd may have queued for a link that does not read
    max_tokens_per_link: int = 100_000
    refused_burst: int = 100  # refused tokens per address, refilled over the window
    refused_window_seconds: float = 60.0
    # token lookups at once per address, the others wait their turn; each is charged to the refused
    # limit until it proves real, so this stays well under refused_burst
    lookups_per_address: int = 32
    max_checks_per_link: int = 1024  # auth frames of a link waiting for their answer; more: unavailable
    # mcpd's own re-check of held tokens after configuration changes (`LinkHub._recheck`)
    recheck_concurrency: int = 8  # token checks at once
    recheck_debounce_seconds: float = 0.1  # changes during a pass: one more pass, this long after
    recheck_backoff_seconds: float = 1.0  # a pass that could not check every token: again after 1, 2, 4 … s
    recheck_backoff_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.lookups_per_address < self.refused_burst:
            raise ValueError("lookups_per_address must be positive and under refused_burst")


class LinkPlane(ControlPlane, Protocol):
    """The control plane, whose checks may leave the token's `lastUsedAt` alone (`touch=False`): mcpd's
    own re-check is not a use of the token."""

    async def introspect(self, bearer: str, *, touch: bool = True) -> Introspection: ...


class Holds(Protocol):
    """Counted resource subscriptions shared with the embedded endpoint (`Router.hold`, `release`)."""

    async def hold(self, caller: Caller, server: str, uri: str, holder: str, *, on: bool) -> None: ...

    def release(self, holder: str) -> None: ...


class Socket(Protocol):
    """The accepted WebSocket (Starlette's)."""

    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass
class _Held:
    caller: Caller
    fresh_until: float  # monotonic; calls need a fresh authentication, events use the last one
    # a configuration change made the check stale (its reach may have narrowed): no events until
    # it is checked again (mcpd does so at once, `LinkHub._recheck`)
    changed: bool = False


@dataclass(eq=False)  # one per socket: hashed by identity
class _Link:
    socket: Socket
    address: str | None
    limits: LinkLimits
    tokens: dict[str, _Held] = field(default_factory=dict)  # token sha → its authentication
    calls: dict[int, tuple[asyncio.Task[None], str]] = field(default_factory=dict)  # id → (task, sha)
    checks: set[asyncio.Task[None]] = field(default_factory=set)  # its auth frames being answered
    asks: dict[int, asyncio.Future[Message]] = field(default_factory=dict)
    holds: Holds | None = None
    # token sha → the (server, uri) it subscribed on this link: `updated` goes only to a token that
    # subscribed and still reaches the server; the token's counted subscriptions end with it
    subscribed: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    holders: set[str] = field(default_factory=set)  # its holders of counted subscriptions
    batching: bool = False  # the link speaks wire.SUBPROTOCOL: frames go out in batches
    outbox: collections.deque[str] = field(default_factory=collections.deque)
    outbox_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    next_ask: int = 0
    ever_authenticated: bool = False
    bad_frames: int = 0
    closed: bool = False
    closing: asyncio.Future[None] | None = None

    def post(self, frame: dict[str, Any]) -> None:
        """Queue a frame for the link's writer; never waits. A link that lets its outbox overflow
        is closed (it stopped reading)."""
        if self.closed:
            return
        text = wire.encode(frame)
        if len(text) > wire.MAX_FRAME_BYTES and frame.get("t") == wire.ANSWER:
            failure = {"t": wire.FAILURE, "id": frame.get("id"), "code": INTERNAL_ERROR}
            text = wire.encode({**failure, "message": "the upstream's answer is too large for the link"})
        self.outbox.append(text)
        self.outbox_bytes += len(text)
        if self.outbox_bytes > self.limits.max_outbox_bytes:
            logger.warning("data-plane link from %s does not read what mcpd sends: closed", self.address)
            self.shut(TRY_AGAIN_LATER, "the link does not read what mcpd sends")
            return
        self.wake.set()

    def shut(self, code: int, reason: str) -> None:
        """Close from mcpd's side: the writer ends, the reader sees the disconnect."""
        if self.closed:
            return
        self.closed = True
        self.outbox.clear()
        self.wake.set()
        self.cancel_work()
        self.closing = asyncio.ensure_future(_close_quietly(self.socket, code, reason))

    def cancel_work(self) -> None:
        """Its calls and token checks end with it: nobody would hear their answers."""
        for task, _ in self.calls.values():
            task.cancel()
        for check in self.checks:
            check.cancel()

    async def shut_now(self, code: int, reason: str) -> None:
        self.shut(code, reason)
        if self.closing is not None:
            await self.closing

    async def write(self) -> None:
        """The link's writer: sends the outbox in order until the link closes."""
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox and not self.closed:
                taken = len(self.outbox)
                text = wire.batch(self.outbox, self.batching)
                taken -= len(self.outbox)
                self.outbox_bytes -= len(text) - (taken - 1)  # the frames, not the newlines between
                try:
                    await self.socket.send_text(text)
                except Exception:  # the socket is gone (the library's exception types vary)
                    self.closed = True
                    return

    def caller(self, sha: str, now: float) -> Caller | None:
        """The token's caller when its authentication here is fresh and it has not expired."""
        held = self.tokens.get(sha)
        if held is None or now >= held.fresh_until:
            return None
        if _expired(held.caller):
            del self.tokens[sha]
            self.unsubscribe(sha)
            return None
        return held.caller

    def reaches(self, server: str) -> bool:
        return any(_hears(held, server) for held in self.tokens.values())

    def hears_update(self, server: str, uri: str) -> bool:
        """Whether a token that subscribed `uri` of `server` here still reaches the server."""
        for sha, subscribed in self.subscribed.items():
            held = self.tokens.get(sha)
            if (server, uri) in subscribed and held is not None and _hears(held, server):
                return True
        return False

    def holder(self, sha: str) -> str:
        """The token's holder of counted subscriptions on this link (`Holds`)."""
        return f"link:{id(self):x}:{sha[:16]}"

    def unsubscribe(self, sha: str) -> None:
        """The token's subscriptions here end: upstream unsubscribes what only it held."""
        self.subscribed.pop(sha, None)
        holder = self.holder(sha)
        if holder in self.holders:
            self.holders.discard(holder)
            if self.holds is not None:
                self.holds.release(holder)

    def end(self, sha: str) -> None:
        """The token no longer works here: dropped, its calls cancelled, its subscriptions ended,
        mcplocal told."""
        if self.tokens.pop(sha, None) is not None:
            self.post({"t": wire.ENDED, "token": sha})
        for task, owner in list(self.calls.values()):
            if owner == sha:
                task.cancel()
        self.unsubscribe(sha)


class LinkHub:
    """Every open link of this mcpd, and what they are told."""

    def __init__(
        self,
        plane: LinkPlane,
        audit: Callable[[AuditRecord], None],
        durable: Callable[[], Awaitable[None]] | None = None,
        limits: LinkLimits | None = None,
        holds: Holds | None = None,
    ):
        self.plane, self.audit, self.durable, self.holds = plane, audit, durable, holds
        self.limits = limits or LinkLimits()
        self.links: set[_Link] = set()
        # bumped whenever authentications may have gone stale: a check under way is done again
        self.generation = 0
        self.refused = FailureThrottle(
            "link-tokens",
            burst=self.limits.refused_burst,
            window_seconds=self.limits.refused_window_seconds,
            max_keys=10_000,
        )
        self.lookups = KeyedTurns(self.limits.lookups_per_address)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rechecking: asyncio.Task[None] | None = None
        self._recheck_again = False
        self._recheck_woken: asyncio.Future[None] | None = None  # a backoff's wait, cut short by a change
        plane.watch(self._on_server_event)

    # ---- what every link hears ---------------------------------------------------------------------

    def tokens_ended(self, token_shas: list[str] | tuple[str, ...]) -> None:
        """Revoked or deleted here: refused at once on every link, their calls cancelled."""
        self.generation += 1
        ended = set(token_shas)
        for link in list(self.links):
            for sha in ended & (link.tokens.keys() | {sha for _, sha in link.calls.values()}):
                link.end(sha)

    def configuration_changed(self) -> None:
        """Reach and bindings may have changed: every token authenticates again before its next call,
        and hears no events until it has; mcpd checks every held token again itself, so a token
        that stopped working (a deleted project, a disabled owner) ends without waiting for a call,
        and one whose reach narrowed hears events by its new reach."""
        self.generation += 1
        for link in list(self.links):
            for held in link.tokens.values():
                held.fresh_until = 0.0
                held.changed = True
            link.post({"t": wire.CHANGED})
        if self._rechecking is not None and not self._rechecking.done():
            # one pass at a time: changes during it make one more pass, after a short pause, however
            # many they are (every REST write is a change: a burst must not cost a pass each)
            self._recheck_again = True
            if self._recheck_woken is not None and not self._recheck_woken.done():
                self._recheck_woken.set_result(None)  # waiting out a backoff: a change is worth a try
            return
        with contextlib.suppress(RuntimeError):  # no running loop: nothing is linked
            self._rechecking = asyncio.get_running_loop().create_task(self._recheck())
            self._rechecking.add_done_callback(_retrieve)

    async def _recheck(self) -> None:
        """Passes over every token held stale by a change until none is: a change (or a revocation)
        during a pass makes one more pass after `recheck_debounce_seconds`; a pass that could not
        check some token (the database failed) makes another after a backoff (1, 2, 4 … s, capped),
        so no token stays deaf to events until it happens to call."""
        limits = self.limits
        failures = 0
        while True:
            self._recheck_again = False
            await self._recheck_pass()
            if self._recheck_again:
                await asyncio.sleep(limits.recheck_debounce_seconds)
                continue
            if not any(
                held.changed for link in self.links if not link.closed for held in link.tokens.values()
            ):
                return
            failures += 1
            delay = min(
                limits.recheck_backoff_max_seconds, limits.recheck_backoff_seconds * 2 ** (failures - 1)
            )
            self._recheck_woken = asyncio.get_running_loop().create_future()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._recheck_woken), delay)
            finally:
                self._recheck_woken = None
            if self._recheck_again:
                await asyncio.sleep(limits.recheck_debounce_seconds)

    async def _recheck_pass(self) -> None:
        """Each distinct stale token checked once (however many links hold it), a few at a time, and
        the answer applied on every link holding it."""
        stale: dict[str, list[tuple[_Link, _Held]]] = {}
        for link in list(self.links):
            if not link.closed:
                for sha, held in link.tokens.items():
                    if held.changed:
                        stale.setdefault(sha, []).append((link, held))
        if not stale:
            return
        room = asyncio.Semaphore(max(1, self.limits.recheck_concurrency))

        async def check(sha: str, holding: list[tuple[_Link, _Held]]) -> None:
            async with room:
                try:
                    await self._refresh(sha, holding)
                except Exception:  # boundary: it stays stale, the next pass tries again
                    logger.exception("data-plane link: re-checking a token failed")

        await asyncio.gather(*(check(sha, holding) for sha, holding in stale.items()))

    async def _refresh(self, sha: str, holding: list[tuple[_Link, _Held]]) -> None:
        generation = self.generation
        try:
            # not a use of the token: its lastUsedAt stays what its calls made it
            answer = await self.plane.introspect(holding[0][1].caller.bearer, touch=False)
        except ControlPlaneUnavailable:
            return  # stays stale (calls authenticate first, events wait); the pass is done again
        if generation != self.generation:
            self._recheck_again = True  # changed or revoked while it was checked: checked again
            return
        fresh_until = time.monotonic() + self.limits.token_seconds
        for link, held in holding:
            if link.tokens.get(sha) is not held:
                continue  # authenticated again (or ended) meanwhile
            if answer.ok and answer.principal is not None:
                link.tokens[sha] = _Held(Caller(answer.principal, held.caller.bearer), fresh_until)
            else:
                link.end(sha)

    async def _on_server_event(self, server: str, message: Message) -> None:
        """Never waits for a link (posted to outboxes): an upstream's reader is never held up."""
        if message.get("method") not in EVENT_METHODS:
            return  # anything else a server sends outside requests belongs to no link's callers
        frame = {"t": wire.EVENT, "server": server, "message": message}
        updated = _updated_uri(message)
        for link in list(self.links):
            if link.hears_update(server, updated) if updated is not None else link.reaches(server):
                link.post(frame)

    def close_all_soon(self) -> None:
        """Close every link (thread- and signal-safe): mcpd is shutting down; mcplocal reconnects to
        whichever mcpd answers."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_all)

    def _close_all(self) -> None:
        if self._rechecking is not None:
            self._rechecking.cancel()
        for link in list(self.links):
            link.shut(wire.GOING_AWAY, "mcpd is shutting down")

    async def close_all(self) -> None:
        self._close_all()
        await asyncio.sleep(0)

    # ---- admission -----------------------------------------------------------------------------------

    def admits(self, address: str | None) -> bool:
        """Whether one more link may open (in all, and from this address)."""
        if len(self.links) >= self.limits.max_links:
            return False
        same = sum(1 for link in self.links if link.address == address)
        return same < self.limits.max_links_per_address

    # ---- one link ------------------------------------------------------------------------------------

    async def serve(self, socket: Socket, address: str | None, *, batching: bool = False) -> None:
        """Read the link's frames until it closes; then cancel what it still has running.
        `batching`: the link chose wire.SUBPROTOCOL (frames go out in batches)."""
        self._loop = asyncio.get_running_loop()
        link = _Link(socket, address, self.limits, holds=self.holds, batching=batching)
        self.links.add(link)
        writer = asyncio.create_task(link.write())

        def unless_authenticated() -> None:
            if not link.ever_authenticated:
                link.shut(POLICY_VIOLATION, "no valid token was presented in time")

        deadline = self._loop.call_later(self.limits.auth_deadline_seconds, unless_authenticated)
        try:
            while not link.closed:
                try:
                    text = await socket.receive_text()
                except Exception:  # disconnected (Starlette raises WebSocketDisconnect)
                    return
                if not link.ever_authenticated and len(text) > wire.MAX_UNAUTHENTICATED_FRAME_BYTES:
                    await link.shut_now(TOO_BIG, "frames are small until a token is presented")
                    return
                if not link.batching or "\n" not in text:
                    self._receive(link, text)
                    continue
                # a batch (wire.SUBPROTOCOL): bounded, and only mcplocal sends them, so junk in one
                # ends the link instead of costing a decode per line
                if len(text) > wire.BATCH_BYTES:
                    await link.shut_now(TOO_BIG, "a batch of frames is larger than the link takes")
                    return
                for line in wire.frames(text):
                    if link.closed:
                        break
                    if not self._receive(link, line):
                        await link.shut_now(POLICY_VIOLATION, "a batch held a bad frame")
                        return
        finally:
            deadline.cancel()
            if link.closing is not None:
                await link.closing  # the close frame goes out before the handler returns
            link.closed = True
            link.wake.set()
            self.links.discard(link)
            link.cancel_work()
            for future in link.asks.values():
                if not future.done():
                    future.set_result({"error": {"code": INTERNAL_ERROR, "message": "mcplocal went away"}})
            writer.cancel()
            if self.holds is not None:
                for holder in link.holders:
                    self.holds.release(holder)  # what only it held is unsubscribed upstream

    def _receive(self, link: _Link, text: str) -> bool:
        """Dispatch one frame; False (counted, logged once per link: a flood of junk is not a flood
        of logs) when it is not one."""
        try:
            frame = wire.decode(text)
        except wire.BadFrame as exc:
            link.bad_frames += 1
            if link.bad_frames == 1:
                logger.warning("data-plane link from %s sent a bad frame: %s", link.address, exc)
            return False
        self._dispatch(link, frame)
        return True

    def _dispatch(self, link: _Link, frame: dict[str, Any]) -> None:
        kind = frame["t"]
        if kind == wire.CALL:
            self._call(link, frame)
        elif kind == wire.CANCEL:
            call_id = frame.get("id")
            entry = link.calls.get(call_id) if _is_id(call_id) else None  # type: ignore[arg-type]
            if entry is not None:
                entry[0].cancel()
        elif kind == wire.REPLY:
            key = frame.get("ask")
            future = link.asks.pop(key, None) if _is_id(key) else None  # type: ignore[arg-type]
            message = frame.get("message")
            if future is not None and not future.done():
                future.set_result(message if isinstance(message, dict) else _malformed_reply())
        elif kind == wire.AUTH:
            if len(link.checks) >= self.limits.max_checks_per_link:
                reply = {"t": wire.AUTHED, "ask": frame.get("ask")}
                link.post({**reply, "unavailable": "too many token checks in flight on this link"})
                return
            task = asyncio.create_task(self._authenticate(link, frame))
            link.checks.add(task)
            task.add_done_callback(link.checks.discard)
            task.add_done_callback(_retrieve)

    async def _authenticate(self, link: _Link, frame: dict[str, Any]) -> None:
        bearer = frame.get("bearer")
        reply: dict[str, Any] = {"t": wire.AUTHED, "ask": frame.get("ask")}
        if not isinstance(bearer, str) or not tokens.is_well_formed(bearer):
            reply["introspection"] = {"ok": False, "reason": "malformed"}
            link.post(reply)
            return
        address = link.address or ""
        # A well-formed token costs a database lookup, so unknown ones (guesses) are throttled per
        # address: each lookup is charged before it runs, so a burst cannot outrun the limit, and
        # refunded once it proves real (a lookup cut short by its link closing keeps its charge:
        # hanging up must not buy guesses back); a few lookups per address at a time, so that a
        # burst of real tokens waits its turn rather than being refused on charges still pending.
        async with self.lookups.turn(address):
            refusal = self.refused.refusal(address)
            if refusal is not None:
                reply["unavailable"] = (
                    f"too many refused tokens from this address; retry in {refusal.retry_after:.0f}s"
                )
                link.post(reply)
                return
            self.refused.charge(address)
            guess = True
            try:
                answer = await self._introspect(bearer)
                if (
                    answer.ok
                    and answer.principal is not None
                    and len(link.tokens) < self.limits.max_tokens_per_link
                ):
                    sha = answer.principal.token_sha or tokens.token_sha(bearer)
                    # the bearer too: a call for a server another mcpd holds is forwarded with it
                    caller = Caller(answer.principal, bearer)
                    link.tokens[sha] = _Held(caller, time.monotonic() + self.limits.token_seconds)
                    link.ever_authenticated = True
                    reply["introspection"] = introspection(answer.principal, answer.expires_at)
                    reply["holdSeconds"] = self.limits.token_seconds
                    guess = False
                else:
                    # a guess (no such token) or a full link; a revoked or expired token is a real
                    # one whose clients have not heard yet, as every linked mcplocal sees after a
                    # revocation: it must not throttle that address's other tokens
                    guess = answer.ok or answer.reason in (None, "unknown")
                    reason = answer.reason if not answer.ok else "too many tokens on this link"
                    reply["introspection"] = {"ok": False, "reason": reason or "unknown"}
            except ControlPlaneUnavailable as exc:
                guess = False
                reply["unavailable"] = str(exc)
            finally:
                if not guess:
                    self.refused.refund(address)
        link.post(reply)

    async def _introspect(self, bearer: str) -> Introspection:
        """The token checked with nothing revoked or changed while the check ran (else again)."""
        for _ in range(5):
            generation = self.generation
            answer = await self.plane.introspect(bearer)
            if generation == self.generation:
                return answer
        raise ControlPlaneUnavailable("tokens are changing too fast to check; try again")

    def _call(self, link: _Link, frame: dict[str, Any]) -> None:
        call_id = frame.get("id")
        if not _is_id(call_id) or call_id in link.calls:
            link.post(
                {"t": wire.FAILURE, "id": None, "message": "a call needs a fresh integer id", "code": -32600}
            )
            return
        assert isinstance(call_id, int)
        sha = str(frame.get("token"))
        caller = link.caller(sha, time.monotonic())
        if caller is None:
            _fail(link, call_id, "the token is not authenticated on this link", wire.TOKEN_NOT_AUTHENTICATED)
            return
        if len(link.calls) >= self.limits.max_calls_per_link:
            _fail(link, call_id, "too many calls in flight on this link")
            return
        task = asyncio.create_task(self._run_call(link, call_id, caller, frame))
        link.calls[call_id] = (task, sha)
        task.add_done_callback(lambda _: link.calls.pop(call_id, None))

    async def _run_call(self, link: _Link, call_id: int, caller: Caller, frame: dict[str, Any]) -> None:
        server, method, params = frame.get("server"), frame.get("method"), frame.get("params")
        if not isinstance(server, str) or method not in wire.FORWARDED_METHODS:
            _fail(link, call_id, f"the link forwards only {', '.join(sorted(wire.FORWARDED_METHODS))}")
            return
        if params is not None and not isinstance(params, dict):
            _fail(link, call_id, "params must be an object")
            return
        if not caller.may_use(server):
            _fail(link, call_id, f'server "{server}" not found')
            return
        named = frame.get("session")
        upstream = self.plane.upstream(caller, server, named if isinstance(named, str) else None)

        async def notify(message: Message) -> None:
            link.post({"t": wire.NOTE, "id": call_id, "message": message})

        if method in (SUBSCRIBE, UNSUBSCRIBE) and self.holds is not None:
            await self._hold(link, call_id, str(frame.get("token")), caller, server, method, params)
            return
        relay = _asker(link, call_id) if frame.get("relay") else None
        started = time.perf_counter()
        answer: Message | None = None
        try:
            try:
                answer = await upstream.request(method, params, timeout=None, notify=notify, relay=relay)
            except UpstreamFailure as exc:
                _fail(link, call_id, str(exc), code=exc.code)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # boundary: one broken call must not end the link
                logger.exception("data-plane call %s %s failed", server, method)
                _fail(link, call_id, "internal error in mcpd", code=INTERNAL_ERROR)
                return
        finally:
            audited = self._record(
                link, caller, server, method, params, answer, time.perf_counter() - started, named
            )
        if audited and self.durable is not None:
            await self.durable()  # MCPLOCAL_AUDIT_SPOOL_SYNC: the event is on disk before the answer
        link.post({"t": wire.ANSWER, "id": call_id, "message": answer})

    async def _hold(
        self,
        link: _Link,
        call_id: int,
        sha: str,
        caller: Caller,
        server: str,
        method: str,
        params: dict[str, Any] | None,
    ) -> None:
        """A split-mode subscribe or unsubscribe, counted with everyone else's (`Router.hold`): one
        mcplocal's unsubscribe never cuts off another's, nor an embedded session's."""
        assert self.holds is not None
        uri = (params or {}).get("uri")
        if not isinstance(uri, str):
            _fail(link, call_id, "resources/subscribe needs a uri", code=-32602)
            return
        holder = link.holder(sha)
        on = method == SUBSCRIBE
        try:
            await self.holds.hold(caller, server, uri, holder, on=on)
        except MCPError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            link.post({"t": wire.ANSWER, "id": call_id, "message": {"error": error}})
            return
        link.holders.add(holder)
        if sha not in link.tokens:  # it ended while upstream was asked: what it held goes with it
            link.unsubscribe(sha)
            _fail(link, call_id, "the token is not authenticated on this link", wire.TOKEN_NOT_AUTHENTICATED)
            return
        subscribed = link.subscribed.setdefault(sha, set())
        (subscribed.add if on else subscribed.discard)((server, uri))
        link.post({"t": wire.ANSWER, "id": call_id, "message": {"result": {}}})

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
            client_addr=link.address,
        )
        if event is None:
            return False
        self.audit(event)
        return True


def _asker(link: _Link, call_id: int) -> Callable[[Message], Awaitable[Message]]:
    """Ask the caller's client (through mcplocal) on the upstream's behalf; the answer comes back as a
    `reply` frame. The call's own timeout and cancellation bound the wait."""

    async def ask(message: Message) -> Message:
        if link.closed:
            return {"error": {"code": INTERNAL_ERROR, "message": "mcplocal went away"}}
        link.next_ask += 1
        key = link.next_ask
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        link.asks[key] = future
        try:
            link.post({"t": wire.ASK, "id": call_id, "ask": key, "message": message})
            return await future
        finally:
            link.asks.pop(key, None)

    return ask


def _fail(
    link: _Link, call_id: int, message: str, reason: str | None = None, code: int = UPSTREAM_UNAVAILABLE
) -> None:
    frame: dict[str, Any] = {"t": wire.FAILURE, "id": call_id, "message": message, "code": code}
    if reason is not None:
        frame["reason"] = reason
    link.post(frame)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _updated_uri(message: Message) -> str | None:
    if message.get("method") != UPDATED:
        return None
    params = message.get("params")
    uri = params.get("uri") if isinstance(params, dict) else None
    return uri if isinstance(uri, str) else ""


def _hears(held: _Held, server: str) -> bool:
    """Whether the token hears `server`'s events: checked since the last change, in reach, unexpired."""
    return not held.changed and held.caller.may_use(server) and not _expired(held.caller)


def _expired(caller: Caller) -> bool:
    expires = caller.principal.token_expires_at
    if expires is None:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= datetime.now(UTC)


def _malformed_reply() -> Message:
    return {"error": {"code": INTERNAL_ERROR, "message": "mcplocal sent a malformed reply"}}


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("data-plane link: a token check failed", exc_info=task.exception())


async def _close_quietly(socket: Socket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await socket.close(code, reason)
