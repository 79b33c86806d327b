"""The token checks mcpd's end of the data-plane link keeps in memory (mcpd/link.py) never outlive
what they were checked against: a revocation, a configuration change (a narrowed reach, a server out
of its project, a deleted project) or an expiry stops the token's next call at once — also when it
raced the check — and a call in flight of a revoked token is cancelled. No processes, no database: a
control plane whose answers the test sets."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from mcpctl.core import link_protocol as wire
from mcpctl.core import tokens
from mcpctl.core.policy import Principal
from mcpctl.mcpd.link import LinkHub, LinkLimits
from mcpctl.mcplocal.ports import Caller, ControlPlaneUnavailable, Introspection, Message

pytestmark = pytest.mark.anyio

BEARER = tokens.generate()
SHA = hashlib.sha256(BEARER.encode()).hexdigest()
ECHO = {"name": "echo", "arguments": {"text": "hi"}}


def accepted(reach: set[str], expires_at: datetime | None = None) -> Introspection:
    principal = Principal(
        kind="token",
        token_name="t",
        token_sha=SHA,
        project="p",
        owner="o@example.com",
        token_expires_at=expires_at,
        reach=frozenset(reach),
    )
    return Introspection(True, principal=principal, expires_at=expires_at)


class Upstream:
    def __init__(self, plane: Plane):
        self.plane = plane

    async def request(self, method: str, params: Any, **_: Any) -> Message:
        self.plane.started.set()
        await self.plane.release.wait()
        return {"result": {"content": [{"type": "text", "text": "hi"}]}}


class Plane:
    """A control plane whose introspection answer is `answer`; `gate`, when set, holds each check
    until the test opens it; upstream calls wait for `release`."""

    def __init__(self, answer: Introspection):
        self.answer = answer
        self.gate: asyncio.Event | None = None
        self.checking = asyncio.Event()
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.checks = 0
        self.touched = 0  # checks that recorded a use of the token (lastUsedAt)
        self.delay = 0.0  # how long each check takes
        self.failing = 0  # the next checks that find the database down

    async def introspect(self, bearer: str, *, touch: bool = True) -> Introspection:
        answer = self.answer
        self.checks += 1
        self.touched += touch
        self.checking.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            self.failing -= 1
            raise ControlPlaneUnavailable("database: OperationalError")
        if self.gate is not None:
            await self.gate.wait()
        if answer.principal is not None and bearer != BEARER:  # another token, with the same reach
            sha = hashlib.sha256(bearer.encode()).hexdigest()
            answer = replace(answer, principal=replace(answer.principal, token_sha=sha))
        return answer  # what the database said when the check read it

    def upstream(self, caller: Caller | None, server: str, session_id: str | None) -> Upstream:
        return Upstream(self)

    def watch(self, callback: Any) -> None:
        self.heard = callback  # the hub's listener for upstream notifications outside requests


class Socket:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()

    async def receive_text(self) -> str:
        return await self.inbox.get()

    async def send_text(self, data: str) -> None:
        async with self.arrived:
            self.frames.append(json.loads(data))
            self.arrived.notify_all()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        pass


class Peer:
    def __init__(self, socket: Socket):
        self.socket = socket
        self.ids = iter(range(1, 10_000))

    async def expect(self, **fields: Any) -> dict[str, Any]:
        with anyio.fail_after(5):
            async with self.socket.arrived:
                while True:
                    for frame in self.socket.frames:
                        if all(frame.get(k) == v for k, v in fields.items()):
                            self.socket.frames.remove(frame)
                            return frame
                    await self.socket.arrived.wait()

    async def auth(self, bearer: str = BEARER) -> dict[str, Any]:
        ask = next(self.ids)
        await self.socket.inbox.put(json.dumps({"t": wire.AUTH, "ask": ask, "bearer": bearer}))
        return await self.expect(t=wire.AUTHED, ask=ask)

    async def send_call(self, server: str, method: str = "tools/call", params: Any = ECHO) -> int:
        call_id = next(self.ids)
        frame = {"t": wire.CALL, "id": call_id, "token": SHA, "server": server, "method": method}
        await self.socket.inbox.put(json.dumps({**frame, "params": params}))
        return call_id

    async def call(self, server: str, method: str = "tools/call", params: Any = ECHO) -> dict[str, Any]:
        call_id = await self.send_call(server, method, params)
        with anyio.fail_after(5):
            while True:
                frame = await self.expect(id=call_id)
                if frame["t"] in (wire.ANSWER, wire.FAILURE):
                    return frame


class Holds:
    """The counted subscriptions (`Router.hold`): who holds what, and who was released."""

    def __init__(self) -> None:
        self.held: set[tuple[str, str, str]] = set()  # (holder, server, uri)
        self.released: list[str] = []

    async def hold(self, caller: Caller, server: str, uri: str, holder: str, *, on: bool) -> None:
        (self.held.add if on else self.held.discard)((holder, server, uri))

    def release(self, holder: str) -> None:
        self.released.append(holder)
        self.held = {h for h in self.held if h[0] != holder}


@asynccontextmanager
async def linked(
    plane: Plane, links: int = 1, holds: Holds | None = None, **limits: Any
) -> AsyncIterator[tuple[LinkHub, list[Peer]]]:
    """A hub with `links` links open, and their peers."""
    limits = {"token_seconds": 3600, **limits}
    hub = LinkHub(plane, audit=lambda record: None, limits=LinkLimits(**limits), holds=holds)  # type: ignore[arg-type]
    sockets = [Socket() for _ in range(links)]
    serving = [asyncio.create_task(hub.serve(socket, "127.0.0.1")) for socket in sockets]
    try:
        yield hub, [Peer(socket) for socket in sockets]
    finally:
        for task in serving:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*serving, return_exceptions=True)


async def until(condition: Callable[[], bool], seconds: float = 5) -> float:
    """Wait until `condition()` holds; how long that took."""
    started = asyncio.get_running_loop().time()
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.005)
    return asyncio.get_running_loop().time() - started


def refused(frame: dict[str, Any]) -> bool:
    return frame["t"] == wire.FAILURE and frame.get("reason") == wire.TOKEN_NOT_AUTHENTICATED


async def test_a_revocation_stops_a_held_token_at_once_and_cancels_its_call_in_flight() -> None:
    plane = Plane(accepted({"fx"}))
    async with linked(plane) as (hub, [peer]):
        assert (await peer.auth())["introspection"]["ok"] is True
        assert (await peer.call("fx"))["t"] == wire.ANSWER
        plane.release.clear()
        plane.started.clear()
        in_flight = await peer.send_call("fx")
        with anyio.fail_after(5):
            await plane.started.wait()
        plane.answer = Introspection(False, "revoked")
        hub.tokens_ended([SHA])
        assert (await peer.expect(t=wire.ENDED))["token"] == SHA
        assert refused(await peer.call("fx"))
        plane.release.set()
        (link,) = hub.links
        with anyio.fail_after(5):  # the call in flight was cancelled: it is never answered
            while link.calls:
                await anyio.sleep(0.01)
        assert not [f for f in peer.socket.frames if f.get("id") == in_flight and f["t"] == wire.ANSWER]
        assert (await peer.auth())["introspection"] == {"ok": False, "reason": "revoked"}


@pytest.mark.parametrize("event", ["revoked", "configuration changed"])
async def test_a_check_raced_by_a_revocation_or_a_change_is_done_again_never_held_stale(event: str) -> None:
    plane = Plane(accepted({"fx", "fy"}))
    plane.gate = asyncio.Event()
    async with linked(plane) as (hub, [peer]):
        ask = next(peer.ids)
        await peer.socket.inbox.put(json.dumps({"t": wire.AUTH, "ask": ask, "bearer": BEARER}))
        with anyio.fail_after(5):
            await plane.checking.wait()  # the check has read the database: reach fx and fy
        # the change lands while the check is under way; the database says so from now on
        if event == "revoked":
            plane.answer = Introspection(False, "revoked")
            hub.tokens_ended([SHA])
        else:
            plane.answer = accepted({"fx"})
            hub.configuration_changed()
        plane.gate.set()
        authed = (await peer.expect(t=wire.AUTHED, ask=ask))["introspection"]
        if event == "revoked":
            assert authed == {"ok": False, "reason": "revoked"}
            assert refused(await peer.call("fx"))
        else:
            assert authed["reach"] == ["fx"]
            assert (await peer.call("fy"))["t"] == wire.FAILURE
            assert (await peer.call("fx"))["t"] == wire.ANSWER


async def test_a_narrowed_reach_or_a_server_taken_out_of_the_project_applies_to_the_next_call() -> None:
    plane = Plane(accepted({"fx", "fy"}))
    async with linked(plane) as (hub, [peer]):
        await peer.auth()
        assert (await peer.call("fy"))["t"] == wire.ANSWER
        plane.answer = accepted({"fx"})  # fy left the project, or the owner's bindings narrowed
        hub.configuration_changed()
        await peer.expect(t=wire.CHANGED)
        # refused as stale, or (mcpd has checked it again by now) outside the new reach
        assert (await peer.call("fy"))["t"] == wire.FAILURE
        assert (await peer.auth())["introspection"]["reach"] == ["fx"]
        narrowed = await peer.call("fy")
        assert narrowed["t"] == wire.FAILURE and not refused(narrowed)
        assert (await peer.call("fx"))["t"] == wire.ANSWER


async def test_a_deleted_project_s_token_ends_once_the_change_is_heard_without_a_call() -> None:
    plane = Plane(accepted({"fx"}))
    async with linked(plane) as (hub, [peer]):
        await peer.auth()
        assert (await peer.call("fx"))["t"] == wire.ANSWER
        plane.answer = Introspection(False, "unknown")  # its tokens went with the project
        hub.configuration_changed()
        assert (await peer.expect(t=wire.ENDED))["token"] == SHA  # mcpd checked it again itself
        assert refused(await peer.call("fx"))
        assert (await peer.auth())["introspection"]["ok"] is False
        assert refused(await peer.call("fx"))


async def test_after_a_change_a_held_token_hears_events_only_within_its_new_reach() -> None:
    plane = Plane(accepted({"fx", "fy"}))
    changed = {"method": "notifications/tools/list_changed"}

    async def heard(server: str) -> bool:
        await plane.heard(server, changed)
        await peer.call("fx")  # frames are in order: an event sent before this answer is in
        events = [f for f in peer.socket.frames if f["t"] == wire.EVENT]
        peer.socket.frames.clear()
        return any(f["server"] == server for f in events)

    async with linked(plane) as (hub, [peer]):
        await peer.auth()
        assert await heard("fy")
        plane.answer = accepted({"fx"})  # fy left the project: its notifications are not this token's
        plane.gate = asyncio.Event()
        plane.checking.clear()
        hub.configuration_changed()
        with anyio.fail_after(5):
            await plane.checking.wait()  # mcpd checks the held token again, without a call
        await plane.heard("fy", changed)  # while that check runs, the stale reach hears nothing
        plane.gate.set()
        await peer.auth()  # frames are in order: a stale event would have come before this answer
        assert not [f for f in peer.socket.frames if f["t"] == wire.EVENT]
        assert not await heard("fy")
        assert await heard("fx")


async def test_a_held_token_is_refused_from_its_expiry_on() -> None:
    expires = datetime.now(UTC) + timedelta(seconds=0.3)
    plane = Plane(accepted({"fx"}, expires))
    async with linked(plane) as (_, [peer]):
        await peer.auth()
        assert (await peer.call("fx"))["t"] == wire.ANSWER
        with anyio.fail_after(5):
            while datetime.now(UTC) < expires:
                await anyio.sleep(0.05)
        assert refused(await peer.call("fx"))  # held for an hour, expired now: no check needed


async def test_a_burst_of_changes_costs_a_check_per_token_per_pass_and_events_resume_after_it() -> None:
    """Every REST write is a change. Each distinct token is checked once per pass (however many links
    hold it), a few at a time; changes during a pass make one more pass, not one each; the events
    withheld during the burst resume shortly after it; mcpd's own checks leave lastUsedAt alone."""
    plane = Plane(accepted({"fx"}))
    bearers = [BEARER, *(tokens.generate() for _ in range(9))]
    async with linked(plane, links=2) as (hub, peers):
        for peer in peers:
            for bearer in bearers:
                assert (await peer.auth(bearer))["introspection"]["ok"] is True
        links = list(hub.links)
        assert all(len(link.tokens) == 10 for link in links)
        plane.delay = 0.002
        plane.checks = plane.touched = 0

        def settled() -> bool:
            return all(not held.changed for link in links for held in link.tokens.values())

        hub.configuration_changed()  # one change: one check per distinct token, not per link
        await until(settled)
        assert plane.checks == 10

        plane.checks = 0
        started = asyncio.get_running_loop().time()
        for _ in range(200):  # about one change a millisecond, each check takes 2 ms
            hub.configuration_changed()
            await asyncio.sleep(0.001)
        burst = asyncio.get_running_loop().time() - started
        resumed = await until(lambda: all(link.reaches("fx") for link in links))
        assert resumed < 1.0  # a pass after the burst's last change (debounced), not one per change
        await until(settled)
        passes = burst / LinkLimits().recheck_debounce_seconds + 3
        assert plane.checks <= passes * 10, (plane.checks, burst)  # not 200 changes x 20 held entries
        assert plane.touched == 0  # a background check is no use of the token


async def test_a_token_the_database_failed_to_check_is_checked_again_with_backoff() -> None:
    plane = Plane(accepted({"fx"}))
    async with linked(plane, recheck_backoff_seconds=0.05) as (hub, [peer]):
        await peer.auth()
        (link,) = hub.links
        plane.checks = 0
        plane.failing = 2  # the database fails the re-check, and the first retry
        hub.configuration_changed()
        await until(lambda: link.reaches("fx"))  # without a call
        assert plane.checks == 3
        assert [f for f in peer.socket.frames if f["t"] == wire.ENDED] == []


@pytest.mark.parametrize("how", ["ended", "narrowed"])
async def test_resource_updates_reach_only_a_token_that_subscribed_and_still_reaches_the_server(
    how: str,
) -> None:
    plane = Plane(accepted({"fx", "fy"}))
    holds = Holds()
    updated = {"method": "notifications/resources/updated", "params": {"uri": "r://a"}}

    async with linked(plane, holds=holds) as (hub, [peer]):

        async def heard() -> bool:
            """Whether the update reached the link: frames are in order, so one sent before the
            answer to a later token check is in by then."""
            await plane.heard("fx", updated)
            await peer.auth(tokens.generate())
            events = [f for f in peer.socket.frames if f["t"] == wire.EVENT]
            peer.socket.frames.clear()
            return any(f["message"] == updated for f in events)

        await peer.auth()
        assert (await peer.call("fx", "resources/subscribe", {"uri": "r://a"}))["t"] == wire.ANSWER
        assert len(holds.held) == 1
        assert await heard()
        (link,) = hub.links
        if how == "ended":
            plane.answer = Introspection(False, "revoked")
            hub.tokens_ended([SHA])
            await peer.expect(t=wire.ENDED, token=SHA)
            assert holds.held == set() and holds.released  # upstream unsubscribes what only it held
            plane.answer = accepted({"fx", "fy"})  # (the other tokens `heard` presents)
        else:
            plane.answer = accepted({"fy"})  # fx left the project
            hub.configuration_changed()
            await until(lambda: not link.tokens[SHA].changed)  # mcpd checked it again, no call
            assert link.reaches("fy") and not link.reaches("fx")
        assert not await heard()


async def _bursts(peers: list[Peer], each: int) -> list[dict[str, Any]]:
    """`each` auth frames of fresh tokens from every peer, all sent at once; their replies."""
    sent = [(peer, next(peer.ids)) for peer in peers for _ in range(each)]
    for peer, ask in sent:
        await peer.socket.inbox.put(json.dumps({"t": wire.AUTH, "ask": ask, "bearer": tokens.generate()}))
    return [await peer.expect(t=wire.AUTHED, ask=ask) for peer, ask in sent]


async def test_a_burst_of_guesses_costs_no_more_lookups_than_the_refused_token_limit() -> None:
    # regression: every frame of a burst passed the limit's check before any lookup was charged,
    # so one burst bought as many database lookups as it had frames — also spread over links
    plane = Plane(Introspection(False, "unknown"))
    plane.delay = 0.02
    async with linked(plane, links=4, refused_burst=10, lookups_per_address=4) as (_, peers):
        replies = await _bursts(peers, 10)
    assert plane.checks == 10
    assert sum("unavailable" in r for r in replies) == 30
    assert all("too many refused tokens" in r["unavailable"] for r in replies if "unavailable" in r)


async def test_a_link_that_closes_ends_its_checks_and_keeps_their_charges() -> None:
    plane = Plane(Introspection(False, "unknown"))
    plane.gate = asyncio.Event()  # every lookup hangs until the link is gone
    async with linked(plane, links=2, refused_burst=10, lookups_per_address=4) as (hub, [gone, other]):
        for _ in range(20):
            frame = {"t": wire.AUTH, "ask": next(gone.ids), "bearer": tokens.generate()}
            await gone.socket.inbox.put(json.dumps(frame))
        await until(lambda: plane.checks == 4)
        (link,) = [link for link in hub.links if link.socket is gone.socket]
        link.shut(1008, "gone")
        await until(lambda: not link.checks and not hub.lookups)  # the waiting ones too
        plane.gate.set()
        # hanging up does not buy the 4 guesses back: the same address has 6 left
        replies = await _bursts([other], 10)
    assert plane.checks == 4 + 6
    assert sum("unavailable" in r for r in replies) == 4


async def test_a_link_may_have_only_so_many_checks_waiting() -> None:
    plane = Plane(accepted({"fx"}))
    plane.gate = asyncio.Event()
    async with linked(plane, max_checks_per_link=3) as (_, [peer]):
        asks = [next(peer.ids) for _ in range(5)]
        for ask in asks:
            await peer.socket.inbox.put(json.dumps({"t": wire.AUTH, "ask": ask, "bearer": tokens.generate()}))
        over = [await peer.expect(t=wire.AUTHED, ask=ask) for ask in asks[3:]]
        assert [r["unavailable"] for r in over] == ["too many token checks in flight on this link"] * 2
        plane.gate.set()
        answered = [await peer.expect(t=wire.AUTHED, ask=ask) for ask in asks[:3]]
    assert [r["introspection"]["ok"] for r in answered] == [True] * 3


def test_lookups_at_once_stay_under_the_refused_token_limit() -> None:
    with pytest.raises(ValueError, match="under refused_burst"):
        LinkLimits(refused_burst=8, lookups_per_address=8)


@pytest.mark.parametrize("answer", [accepted({"fx"}), Introspection(False, "revoked")])
async def test_a_burst_of_real_tokens_larger_than_the_limit_is_never_refused_for_its_size(
    answer: Introspection,
) -> None:
    # valid tokens, and revoked ones (real tokens whose clients have not heard yet), are not guesses
    plane = Plane(answer)
    plane.delay = 0.01
    # pending charges are at most lookups_per_address, which leaves room under the limit
    async with linked(plane, refused_burst=5, lookups_per_address=2) as (hub, [peer]):
        replies = await _bursts([peer], 30)
        assert len(hub.lookups) == 0  # the turns table holds only addresses with lookups under way
    assert plane.checks == 30
    assert [r["introspection"]["ok"] for r in replies] == [answer.ok] * 30
