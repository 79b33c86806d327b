"""One MCP client connection to an upstream, shared by many callers.

Every caller's request gets a fresh JSON-RPC id on the upstream side (and a fresh progress token, if
it asked for progress), so callers never see each other's ids; the answer and the progress
notifications go back to the caller that asked. Notifications that belong to no request
(list_changed, logging, resource updates) go to `on_notification`. When the link closes, every
request still waiting fails at once with `UpstreamGone`: a caller never waits on a dead upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import INTERNAL_ERROR, METHOD_NOT_FOUND, REQUEST_TIMEOUT
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

import mcpctl
from mcpctl.mcpd.supervisor.links import Link, LinkClosed

logger = logging.getLogger(__name__)

# the handshake-era versions the SDK knows; mcpd speaks the newest of them to upstreams
SUPPORTED_VERSIONS = HANDSHAKE_PROTOCOL_VERSIONS

# JSON-RPC error codes used by the proxy
UPSTREAM_UNAVAILABLE = -32000

Notify = Callable[[dict[str, Any]], Awaitable[None]]
Relay = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
RELAYED = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})
# How long a request we gave up on (timed out, caller gone) may still be running upstream: until its
# late answer arrives, or this long, log lines and requests from the upstream are not attributed to
# the one request left in flight, as they may be the abandoned one's.
ABANDONED_SECONDS = 30.0


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
        self._abandoned: dict[int, float] = {}  # upstream id → when we stop assuming it still runs

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
                message = await self.link.receive()
                try:
                    await self._dispatch(message)
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

    async def _dispatch(self, message: dict[str, Any]) -> None:
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
        if "id" in message:
            relay = self._relay_for(message)
            if relay is not None:  # answered by a caller's client: never block this reader on it
                task = asyncio.create_task(self._relay(relay, message))
                self._relays.add(task)
                task.add_done_callback(self._relays.discard)
                return
            await self._answer_upstream_request(message)
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
            return  # the upstream gave up on one of ours; its error response (if any) settles it
        if method == "notifications/message":
            # A log line belongs to whoever's request produced it. Over stdio nothing says which, so
            # it goes to the one caller in flight (when it listens) and is never shown to others.
            only = self._only_caller()
            if only is not None and only.notify is not None:
                await _deliver(only.notify, message)
            return
        if self.on_notification is not None:
            await _deliver(self.on_notification, message)

    def _relay_for(self, message: dict[str, Any]) -> Relay | None:
        """Whose client answers a request from the upstream. Over stdio nothing says which of our
        requests it belongs to, so it goes to the one caller in flight when that caller can relay
        it (as log lines do); with several in flight it cannot be attributed and is refused."""
        only = self._only_caller() if message.get("method") in RELAYED else None
        return only.relay if only is not None else None

    def _only_caller(self) -> _Pending | None:
        """The request in flight when it is the only one that may still be running upstream."""
        if self._abandoned:
            now = time.monotonic()
            self._abandoned = {k: until for k, until in self._abandoned.items() if until > now}
        if len(self._pending) != 1 or self._abandoned:
            return None
        (entry,) = self._pending.values()
        return entry

    async def _relay(self, relay: Relay, message: dict[str, Any]) -> None:
        try:
            answer = await relay({"method": message["method"], "params": message.get("params")})
        except Exception as exc:  # boundary: the caller's client failed; the upstream gets an error
            answer = {"error": {"code": INTERNAL_ERROR, "message": f"the client could not answer: {exc}"}}
        reply = {"jsonrpc": "2.0", "id": message["id"], **answer}
        with contextlib.suppress(LinkClosed, TimeoutError):
            async with asyncio.timeout(5.0):
                await self.link.send(reply)

    async def _answer_upstream_request(self, message: dict[str, Any]) -> None:
        """Requests from the upstream: ping and roots/list are answered here; sampling and
        elicitation cannot reach a caller through a shared instance, so they are refused clearly."""
        method = message["method"]
        if method == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        elif method == "roots/list":
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": {"roots": []}}
        else:
            reply = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": METHOD_NOT_FOUND, "message": f"mcpd does not relay {method!r} to clients"},
            }
        with contextlib.suppress(LinkClosed, TimeoutError):
            async with asyncio.timeout(5.0):
                await self.link.send(reply)

    # ---- requests --------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float,
        notify: Notify | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        """Send one request; return the upstream's response message (`result` or `error`).

        Raises UpstreamGone if the link closes first, UpstreamTimeout after `timeout` seconds (the
        upstream is told with notifications/cancelled, as it is when the caller is cancelled)."""
        if self._closed_reason is not None:
            raise UpstreamGone(f"{self.label} {self._closed_reason}")
        upstream_id = next(self._ids)
        loop = asyncio.get_running_loop()
        entry = _Pending(future=loop.create_future(), notify=notify, relay=relay)
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
        self._pending[upstream_id] = entry
        sent = False
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives with the answer, and a stop must never be swallowed. The send is inside the
            # deadline too: an upstream that stops reading stdin cannot block a caller forever.
            async with asyncio.timeout(timeout):
                await self.link.send(message)
                sent = True
                return await asyncio.shield(entry.future)
        except LinkClosed as exc:
            raise UpstreamGone(f"{self.label} {exc}") from exc
        except TimeoutError:
            self._abandon(upstream_id, sent)
            await self._cancel(upstream_id, f"timed out after {timeout:g}s")
            raise UpstreamTimeout(f"{self.label} did not answer {method} within {timeout:g}s") from None
        except asyncio.CancelledError:
            self._abandon(upstream_id, sent)
            await asyncio.shield(self._cancel(upstream_id, "the caller went away"))
            raise
        finally:
            gone = self._pending.pop(upstream_id, None)
            if gone is not None and gone.progress_token is not None:
                self._progress.pop(gone.progress_token, None)
            if entry.future.done() and not entry.future.cancelled():
                entry.future.exception()  # mark retrieved

    def _abandon(self, upstream_id: int, sent: bool) -> None:
        if sent and upstream_id in self._pending:  # it may still run upstream (and log, and ask)
            self._abandoned[upstream_id] = time.monotonic() + ABANDONED_SECONDS

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
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                # sampling and elicitation are relayed to the caller whose request caused them
                "capabilities": {
                    "roots": {"listChanged": False},
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


def _with_token(message: dict[str, Any], entry: _Pending) -> dict[str, Any]:
    params = dict(message.get("params") or {})
    params["progressToken"] = entry.original_token
    return {**message, "params": params}


async def _deliver(callback: Notify, message: dict[str, Any]) -> None:
    try:
        await callback(message)
    except Exception:  # boundary: a caller's broken stream must not stop the reader
        logger.exception("delivering an upstream notification failed")
