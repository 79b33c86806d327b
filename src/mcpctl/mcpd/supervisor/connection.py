"""One MCP client connection to an upstream, shared by many callers.

Every caller's request gets a fresh JSON-RPC id on the upstream side (and a fresh progress token, if
it asked for progress), so callers never see each other's ids; the answer and the progress
notifications go back to the caller that asked. Notifications that belong to no request
(list_changed, resource updates) go to `on_notification`. When the link closes, every request still
waiting fails at once with `UpstreamGone`: a caller never waits on a dead upstream.

Requests from the upstream (sampling, elicitation) and its log lines go to the caller whose request
they belong to: the one whose response stream they arrived on (Streamable HTTP), else the one request
in flight; when that cannot be told they are refused (log lines dropped), never given to another
caller. `roots/list` is answered with the roots of the callers in flight, kept consistent by a
`RootsGate` (roots.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcpctl
from mcpctl.core import asks
from mcpctl.mcpd.supervisor.links import Link, LinkClosed
from mcpctl.mcpd.supervisor.roots import Roots, RootsGate, roots_of

logger = logging.getLogger(__name__)

# JSON-RPC error codes. Not imported from the SDK's mcp_types: that costs 0.2-0.5 s of import, and
# the supervisor (which spawns the stdio servers first at start-up) needs only these numbers
# (tests/unit/test_jsonrpc_codes.py holds them to the SDK's).
INTERNAL_ERROR = -32603
METHOD_NOT_FOUND = -32601
REQUEST_TIMEOUT = -32001
UPSTREAM_UNAVAILABLE = -32000

Notify = Callable[[dict[str, Any]], Awaitable[None]]
Relay = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
RELAYED = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})
# How long a request we gave up on (timed out, caller gone) may still be running upstream: until its
# late answer arrives, or this long, log lines and requests from the upstream are not attributed to
# the one request left in flight, as they may be the abandoned one's.
ABANDONED_SECONDS = 30.0
# How long switching an upstream to another caller's roots waits for it to re-read them after
# notifications/roots/list_changed (an upstream that lets it pass is only notified from then on).
ROOTS_REREAD_SECONDS = 2.0
# After the re-read: nothing in MCP says when an upstream has applied the roots it read (server-
# filesystem checks them asynchronously before replacing its directories), so a switch waits a round
# trip (ping) and this long — or ten round trips, when the machine is so loaded that this is longer —
# before the request that needed it goes out.
ROOTS_SETTLE_SECONDS = 0.1
PARKED_AFTER = 0.015
# mcpd's own question (never the upstream's), for a caller of an upstream that holds roots
LIST_ROOTS: dict[str, Any] = {"method": "roots/list", "params": None}


class UpstreamError(Exception):
    """A request could not be answered by the upstream; `code` is the JSON-RPC error code to report."""

    code = UPSTREAM_UNAVAILABLE


class UpstreamGone(UpstreamError):
    """The upstream went away before answering."""


class UpstreamTimeout(UpstreamError):
    code = REQUEST_TIMEOUT


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    notify: Notify | None  # the caller's stream for notifications of this request (progress, logs)
    progress_token: str | None = None
    original_token: Any = None
    # Asks the caller's client on the upstream's behalf (sampling, elicitation, roots): returns
    # {"result": …} or {"error": …}.
    relay: Relay | None = None
    roots_known: bool = False  # its caller's roots were asked beforehand and given to the upstream
    asking: int = 0  # the upstream's questions of this request now waiting for the caller's client
    asking_since: float = 0.0
    own: bool = False  # mcpd's own (a health probe): no caller's, asks no client (it has no relay)


class Connection:
    """Multiplexes requests from many callers over one link."""

    def __init__(self, link: Link, *, on_notification: Notify | None = None, label: str = "upstream"):
        self.link = link
        self.label = label
        self.on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._progress: dict[str, int] = {}  # upstream progress token → upstream request id
        self._closed_reason: str | None = None
        self.initialize_result: dict[str, Any] | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._asking: dict[str, asyncio.Task[None]] = {}  # the upstream's questions being answered, by id
        # upstream id → (when we stop assuming it still runs, whether it could ask its caller's client)
        self._abandoned: dict[int, tuple[float, bool]] = {}
        self.roots = RootsGate()

    @property
    def inflight(self) -> int:
        return len(self._pending)

    @property
    def closed_reason(self) -> str | None:
        return self._closed_reason

    # ---- the reader ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read until the link closes, then fail whatever is still waiting."""
        try:
            while True:
                message, related = await self.link.receive()
                try:
                    await self._dispatch(message, related)
                except Exception:  # boundary: one malformed message must not end the connection
                    logger.warning(
                        "%s sent a message mcpd could not route; ignored", self.label, exc_info=True
                    )
        except LinkClosed as exc:
            self._closed_reason = str(exc)
        finally:
            self._closed_reason = self._closed_reason or self.link.closed_reason or "connection closed"
            self._fail_all(self._closed_reason)

    def _fail_all(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        self._progress.clear()
        self._abandoned.clear()
        for entry in pending.values():
            if not entry.future.done():
                entry.future.set_exception(UpstreamGone(f"{self.label} {reason}"))

    async def _dispatch(self, message: dict[str, Any], related: Any = None) -> None:
        """Route one message; `related` is the upstream id of the request on whose response stream
        it arrived (None: the link cannot tell)."""
        method = message.get("method")
        if method is None:  # a response to one of ours
            key = message.get("id")
            entry = self._pending.pop(key, None) if isinstance(key, int) else None
            if entry is None:
                if isinstance(key, int):  # a late answer to a request that timed out or was cancelled
                    self._abandoned.pop(key, None)
                return
            if entry.progress_token is not None:
                self._progress.pop(entry.progress_token, None)
            if not entry.future.done():
                entry.future.set_result(message)
            return
        if "id" in message:  # a request from the upstream: answered aside, never blocking this reader
            task = asyncio.create_task(self._answer(message, related))
            key = json.dumps(message["id"])
            self._relays.add(task)
            self._asking[key] = task
            task.add_done_callback(self._relays.discard)
            task.add_done_callback(
                lambda done: self._asking.pop(key, None) if self._asking.get(key) is done else None
            )
            return
        params = message.get("params")
        if method == "notifications/progress":
            token = params.get("progressToken") if isinstance(params, dict) else None
            owner = self._progress.get(str(token))
            entry = self._pending.get(owner) if owner is not None else None
            if entry is not None and entry.notify is not None:
                await _deliver(entry.notify, _with_token(message, entry))
            return
        if method == "notifications/cancelled":
            # the upstream gave up on one of ours (its error response, if any, settles it), or
            # withdrew a question of its own: the caller's client is not kept waiting on it
            withdrawn = params.get("requestId") if isinstance(params, dict) else None
            question = self._asking.pop(json.dumps(withdrawn), None)
            if question is not None:
                question.cancel()
            return
        if method == "notifications/message":
            # A log line belongs to whoever's request produced it: the request whose stream it came
            # on, else (stdio says nothing) the one caller in flight. It is never shown to others.
            # With nothing in flight (nor recently abandoned) it belongs to no request: the project's
            # sessions hear it (on_notification), at their levels.
            source = self._owner(related)
            if source is not None:
                if source.notify is not None:
                    await _deliver(source.notify, message)
                return
            if related is not None or self._pending or self._abandoned:
                return  # one of several requests may have produced it: shown to none of them
        if self.on_notification is not None:
            await _deliver(self.on_notification, message)

    def _owner(self, related: Any, *, askers: bool = False) -> _Pending | None:
        """The request a message from the upstream belongs to: the one whose response stream it came
        on; with no stream to tell (stdio, the HTTP GET stream) the one request in flight. `askers`:
        for a request to a client, only requests that carry a relay count (a caller's tools/call,
        prompts/get, resources/read): the others (mcpd's discovery and probes, completions, pings)
        do not ask clients, and could not relay it if they did."""
        if related is not None:
            return self._pending.get(related) if isinstance(related, int) else None
        return self._only_caller(askers)

    def _only_caller(self, askers: bool = False) -> _Pending | None:
        """The request in flight when it is the only one that may still be running upstream."""
        if self._abandoned:
            now = time.monotonic()
            self._abandoned = {k: gone for k, gone in self._abandoned.items() if gone[0] > now}
        if any(could_ask or not askers for _, could_ask in self._abandoned.values()):
            return None
        now = time.monotonic()
        # For log lines, mcpd's own requests (probes) do not count: a line made while one ran is no
        # other caller's, so the one caller in flight hears its own (a probe every second made a
        # caller's log lines ambiguous, and lost, whenever the two overlapped). Questions go only to
        # a request with a relay, which an own request never has.
        candidates = [
            e
            for e in self._pending.values()
            if ((e.relay is not None and not _parked(e, now)) if askers else not e.own)
        ]
        if len(candidates) != 1:
            return None
        (entry,) = candidates
        return entry

    async def _answer(self, message: dict[str, Any], related: Any) -> None:
        """Answer a request from the upstream: ping here, roots/list from the roots gate, sampling
        and elicitation by the client of the caller they belong to (refused when that is unknown)."""
        method = message["method"]
        if method == "ping":
            answer: dict[str, Any] = {"result": {}}
        elif method == "roots/list":
            switching = self.roots.target
            if not any(e.relay is not None for e in self._pending.values()):
                self.roots.standing = True  # it reads roots on its own, outside callers' requests
            owner = self._owner(related, askers=True) if switching is None else None
            if owner is not None and owner.relay is not None and not owner.roots_known:
                # a caller whose roots mcpd could not learn beforehand (a 2026-07-28 caller: in an
                # input_required round) is asked the upstream's own question, unless admitted
                # callers hold the upstream's roots now: never another caller's roots, nor a switch
                # under their feet
                self.roots.aware = True
                answer = {"result": {"roots": []}}
                if not self.roots.busy:
                    answer = await self._ask_owner(owner, message)
                    if "result" in answer and not self.roots.busy:
                        self.roots.given(roots_of(answer))
            elif owner is None and switching is None and self._unheld_in_flight():
                # whose read it is cannot be told, and a request in flight holds no roots: it must
                # not be handed an admitted caller's
                answer = {"result": {"roots": []}}
            else:
                answer = {"result": {"roots": await self._current_roots(related)}}
        else:
            owner = self._owner(related, askers=True) if method in RELAYED else None
            if owner is not None and owner.relay is not None:
                answer = await self._ask_owner(owner, message)
            else:
                why = "whose request it belongs to is unknown" if method in RELAYED else "it is not relayed"
                answer = {"error": {"code": METHOD_NOT_FOUND, "message": f"mcpd refused {method!r}: {why}"}}
        reply = {"jsonrpc": "2.0", "id": message["id"], **answer}
        with contextlib.suppress(LinkClosed, TimeoutError):
            async with asyncio.timeout(5.0):
                await self.link.send(reply)
                if method == "roots/list" and switching is not None and self.roots.target is switching:
                    self.roots.reread.set()

    def _roots_question(self) -> dict[str, Any]:
        """mcpd's question for a caller's roots. A 2026-07-28 caller is asked (in an input_required
        round) only by an upstream that reads roots on its own, outside any request (as
        server-filesystem does): one that reads them within a request asks that request's caller
        itself, so a round is not spent on every call to it."""
        how = asks.ROUND if self.roots.standing else asks.AT_ONCE
        return {**LIST_ROOTS, asks.OPTIONAL: how}

    def _unheld_in_flight(self) -> bool:
        """A caller's request is in flight that was not admitted by its roots."""
        return any(e.relay is not None and not e.roots_known for e in self._pending.values())

    async def _ask_owner(self, owner: _Pending, message: dict[str, Any]) -> dict[str, Any]:
        """The caller's client's answer to the upstream's question (the request counts as parked on
        it meanwhile; a question the upstream withdraws ends this, and the parking, at once)."""
        assert owner.relay is not None
        if not owner.asking:
            owner.asking_since = time.monotonic()
        owner.asking += 1
        try:
            return await _ask(owner.relay, message)
        finally:
            owner.asking -= 1

    async def _current_roots(self, related: Any) -> Roots:
        """The roots the upstream may see now; on its first read, before any caller went through
        the gate, those of the caller it belongs to (none when that cannot be told)."""
        roots = self.roots.current()
        if roots is not None:
            return roots
        owner = self._owner(related, askers=True)
        roots = (
            roots_of(await _ask(owner.relay, self._roots_question()))
            if owner is not None and owner.relay
            else []
        )
        if self.roots.current() is None:
            self.roots.given(roots)
        return roots

    async def _switch_roots(self) -> None:
        """Give the upstream the roots of the request admitted to switch them (`RootsGate.enter`)."""
        settled = False
        try:
            await self.notify("notifications/roots/list_changed")
            if self.roots.follows_changes:
                try:
                    async with asyncio.timeout(ROOTS_REREAD_SECONDS):
                        await self.roots.reread.wait()
                except TimeoutError:
                    self.roots.follows_changes = False
                    logger.info("%s does not re-read roots when told they changed", self.label)
                else:
                    started = time.monotonic()
                    await self.request("ping", None, timeout=ROOTS_REREAD_SECONDS)
                    await asyncio.sleep(max(ROOTS_SETTLE_SECONDS, 10 * (time.monotonic() - started)))
            settled = True
        finally:
            self.roots.switched(settled)

    # ---- requests --------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float,
        notify: Notify | None = None,
        relay: Relay | None = None,
        own: bool = False,
    ) -> dict[str, Any]:
        """Send one request; return the upstream's response message (`result` or `error`). `own`:
        mcpd's own request (a health probe), which makes no caller's log lines ambiguous: a log line
        it causes may reach the one caller in flight (the operator's probe, no other caller's).

        Raises UpstreamGone if the link closes first, UpstreamTimeout after `timeout` seconds (the
        upstream is told with notifications/cancelled, as it is when the caller is cancelled)."""
        if own and (notify is not None or relay is not None):
            raise ValueError("mcpd's own request has no caller to notify or ask")
        if self._closed_reason is not None:
            raise UpstreamGone(f"{self.label} {self._closed_reason}")
        upstream_id = next(self._ids)
        loop = asyncio.get_running_loop()
        gated = relay is not None and self.roots.aware  # this caller's roots matter to the upstream
        entry = _Pending(future=loop.create_future(), notify=notify, relay=relay, own=own)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": upstream_id, "method": method}
        if params is not None:
            params = dict(params)
            meta = params.get("_meta")
            if isinstance(meta, dict) and "progressToken" in meta:
                token = f"mcpd-{upstream_id}"
                entry.progress_token = token
                self._progress[token] = upstream_id
                entry.original_token = meta["progressToken"]
                params["_meta"] = {**meta, "progressToken": token}
            message["params"] = params
        sent = entered = False
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives with the answer, and a stop must never be swallowed. The send is inside the
            # deadline too: an upstream that stops reading stdin cannot block a caller forever.
            async with asyncio.timeout(timeout):
                if gated and relay is not None:
                    # the caller is asked each time, so a change on its side (its roots
                    # list_changed) reaches the upstream with its next request; a caller that
                    # cannot be asked at once is not held to roots (its reads are asked of it)
                    known = await _ask(relay, self._roots_question())
                    if "result" in known:
                        entry.roots_known = True
                        switch = await self.roots.enter(roots_of(known))
                        entered = True
                        if switch:
                            await self._switch_roots()
                self._pending[upstream_id] = entry
                await self.link.send(message)
                sent = True
                # awaited as is, not shielded: a cancelled caller cancels its own future, which
                # the reader then skips (`done()`), and an answer is one loop turn sooner
                return await entry.future
        except LinkClosed as exc:
            raise UpstreamGone(f"{self.label} {exc}") from exc
        except TimeoutError:
            self._abandon(upstream_id, sent, relay is not None)
            await self._cancel(upstream_id, f"timed out after {timeout:g}s")
            if not sent:  # its input blocked, or other callers' roots held it the whole time
                raise UpstreamTimeout(
                    f"{method} could not be sent to {self.label} within {timeout:g}s"
                ) from None
            raise UpstreamTimeout(f"{self.label} did not answer {method} within {timeout:g}s") from None
        except asyncio.CancelledError:
            self._abandon(upstream_id, sent, relay is not None)
            await asyncio.shield(self._cancel(upstream_id, "the caller went away"))
            raise
        finally:
            if entered:
                self.roots.leave()
            gone = self._pending.pop(upstream_id, None)
            if gone is not None and gone.progress_token is not None:
                self._progress.pop(gone.progress_token, None)
            if entry.future.done() and not entry.future.cancelled():
                entry.future.exception()  # mark retrieved

    def _abandon(self, upstream_id: int, sent: bool, could_ask: bool) -> None:
        if sent and upstream_id in self._pending:  # it may still run upstream (and log, and ask)
            self._abandoned[upstream_id] = (time.monotonic() + ABANDONED_SECONDS, could_ask)

    async def _cancel(self, upstream_id: int, reason: str) -> None:
        if upstream_id not in self._pending:
            return
        notice = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": upstream_id, "reason": reason},
        }
        with contextlib.suppress(LinkClosed, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.link.send(notice)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        try:
            async with asyncio.timeout(5.0):
                await self.link.send(message)
        except LinkClosed as exc:
            raise UpstreamGone(f"{self.label} {exc}") from exc
        except TimeoutError:
            raise UpstreamTimeout(f"{self.label} does not read its input") from None

    async def initialize(self, timeout: float) -> dict[str, Any]:
        """The MCP handshake as a client; returns (and keeps) the upstream's InitializeResult."""
        response = await self.request(
            "initialize",
            {
                "protocolVersion": _latest_handshake_version(),
                # sampling and elicitation are relayed to the caller whose request caused them
                "capabilities": {
                    "roots": {"listChanged": True},
                    "sampling": {},
                    "elicitation": {"form": {}, "url": {}},
                },
                "clientInfo": {"name": "mcpd", "version": mcpctl.__version__},
            },
            timeout=timeout,
        )
        if "error" in response:
            error = response["error"] or {}
            raise UpstreamError(f"initialize failed: {error.get('message', error)}")
        result = response.get("result")
        if not isinstance(result, dict) or "protocolVersion" not in result:
            raise UpstreamError("initialize failed: the answer is not an InitializeResult")
        await self.notify("notifications/initialized")
        self.initialize_result = result
        return result


def _parked(entry: _Pending, now: float) -> bool:
    """A request whose upstream handler waits on its caller's client (a person answering an
    elicitation, a 2026-07-28 caller between `input_required` rounds) is no candidate for a new,
    unattributed question after PARKED_AFTER: a handler awaits its question's answer before it goes
    on, so one parked call does not make every other caller's questions unattributable. A question
    the upstream withdraws (`notifications/cancelled`) unparks it at once. Log lines are never
    attributed this way (any request in flight may log). The one gap: a handler that sends a second
    question while its first is unanswered, more than PARKED_AFTER later (docs/security.md)."""
    return entry.asking > 0 and now - entry.asking_since > PARKED_AFTER


async def _ask(relay: Relay, message: dict[str, Any]) -> dict[str, Any]:
    """A caller's client's answer to a request on the upstream's behalf: {"result"} or {"error"}."""
    try:
        how = asks.optional(message)
        optional = {asks.OPTIONAL: how} if how is not None else {}
        return await relay({"method": message["method"], "params": message.get("params"), **optional})
    except Exception as exc:  # boundary: the caller's client failed; the upstream gets an error
        return {"error": {"code": INTERNAL_ERROR, "message": f"the client could not answer: {exc}"}}


def _with_token(message: dict[str, Any], entry: _Pending) -> dict[str, Any]:
    params = dict(message.get("params") or {})
    params["progressToken"] = entry.original_token
    return {**message, "params": params}


async def _deliver(callback: Notify, message: dict[str, Any]) -> None:
    try:
        await callback(message)
    except Exception:  # boundary: a caller's broken stream must not stop the reader
        logger.exception("delivering an upstream notification failed")


def _latest_handshake_version() -> str:
    """The newest handshake-era version the SDK knows: what mcpd speaks to upstreams."""
    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    return LATEST_HANDSHAKE_VERSION
