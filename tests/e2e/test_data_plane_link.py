"""The data-plane link (`/api/v1/link`) as a hostile client sees it: nothing works without presenting a
valid token, calls are made only as a presented token and only within its reach, revocation and
configuration changes are pushed and take effect at once, browsers are refused. A real mcpd, the
`websockets` client, raw frames."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from mcpctl.core import tokens
from tests.e2e.conftest import Cli, login_admin
from tests.e2e.upstreams import FIXTURE, PYTHON, wait_running

pytestmark = pytest.mark.e2e
MCPD_ENV = {"MCPD_LINK_MAX_OUTBOX_BYTES": str(1024 * 1024), "MCPD_LINK_AUTH_DEADLINE_SECONDS": "2"}


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "server", "fy", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "linked", "--server", "fx")
    op.ok("create", "project", "elsewhere", "--server", "fy")
    wait_running(op, "fx", 1)
    wait_running(op, "fy", 1)
    return op


def mint(op: Cli, name: str, project: str = "linked") -> str:
    token: str = op.json("create", "mcptoken", name, "-p", project)["token"]
    return token


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Peer:
    """A raw link client: send frames, wait for the frame that matches."""

    def __init__(self, socket: ClientConnection):
        self.socket = socket
        self.ids = iter(range(1, 10_000))
        self.backlog: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(frame))

    async def expect(self, match: Callable[[dict[str, Any]], bool], seconds: float = 10) -> dict[str, Any]:
        """The first frame that matches, from those set aside by earlier waits or arriving now."""
        for frame in self.backlog:
            if match(frame):
                self.backlog.remove(frame)
                return frame
        with anyio.fail_after(seconds):
            while True:
                frame = json.loads(await self.socket.recv())
                if match(frame):
                    return frame
                self.backlog.append(frame)

    async def socket_auth(self, token: str) -> dict[str, Any]:
        """The whole `authed` frame."""
        ask = next(self.ids)
        await self.send({"t": "auth", "ask": ask, "bearer": token})
        return await self.expect(lambda f: f.get("t") == "authed" and f.get("ask") == ask)

    async def auth(self, token: str) -> dict[str, Any]:
        introspection: dict[str, Any] = (await self.socket_auth(token))["introspection"]
        return introspection

    async def call(
        self, token_sha: str, server: str, method: str, params: dict[str, Any] | None
    ) -> dict[str, Any]:
        call_id = next(self.ids)
        frame: dict[str, Any] = {
            "t": "call",
            "id": call_id,
            "token": token_sha,
            "server": server,
            "method": method,
        }
        if params is not None:
            frame["params"] = params
        await self.send(frame)
        return await self.expect(lambda f: f.get("id") == call_id and f.get("t") in ("answer", "failure"))


@asynccontextmanager
async def peer(op: Cli, **options: Any) -> AsyncIterator[Peer]:
    url = op.daemon.url.replace("http://", "ws://") + "/api/v1/link"
    async with connect(url, proxy=None, **options) as socket:
        yield Peer(socket)


ECHO = {"name": "echo", "arguments": {"text": "hi"}}


def test_a_call_is_made_only_as_a_token_presented_on_this_link(op: Cli) -> None:
    token = mint(op, "presented")

    async def scenario() -> None:
        async with peer(op) as stranger:
            refused = await stranger.call(sha(token), "fx", "tools/call", ECHO)
            assert refused["t"] == "failure" and refused["reason"] == "token", refused
        async with peer(op) as owner:
            assert (await owner.auth(token))["ok"] is True
            answer = await owner.call(sha(token), "fx", "tools/call", ECHO)
            assert answer["t"] == "answer" and answer["message"]["result"]["content"][0]["text"] == "hi"
        async with peer(op) as other:  # presenting it on one link does not lend it to another
            refused = await other.call(sha(token), "fx", "tools/call", ECHO)
            assert refused["reason"] == "token"

    anyio.run(scenario)


def test_bad_tokens_are_refused(op: Cli) -> None:
    async def scenario() -> None:
        async with peer(op) as link:
            assert await link.auth("mcpctl_pat_notatoken") == {"ok": False, "reason": "malformed"}
            assert (await link.auth(12345))["ok"] is False  # type: ignore[arg-type]
            assert await link.auth(tokens.generate()) == {"ok": False, "reason": "unknown"}

    anyio.run(scenario)


def test_a_link_that_presents_no_token_is_closed(op: Cli) -> None:
    async def scenario() -> None:
        async with peer(op) as idle:
            with anyio.fail_after(10), pytest.raises(websockets.ConnectionClosed) as closed:
                await idle.socket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with peer(op) as loud:  # before a valid token, frames are small
            await loud.socket.send(json.dumps({"t": "junk", "pad": "x" * 100_000}))
            with anyio.fail_after(10), pytest.raises(websockets.ConnectionClosed) as closed:
                await loud.socket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    anyio.run(scenario)


def test_a_link_that_stops_reading_is_closed_and_stalls_no_one_else(op: Cli) -> None:
    """mcpd never waits for a link's reader: a link that asks for much and reads nothing fills its
    own bounded outbox (MCPD_LINK_MAX_OUTBOX_BYTES, 1 MiB here) and is closed, while another link's
    calls to the same upstream instance go on."""
    hog_token, victim_token = mint(op, "hog"), mint(op, "victim")
    big = {"name": "echo", "arguments": {"text": "x" * 300_000}}

    async def scenario() -> None:
        async with peer(op, max_queue=1) as hog, peer(op) as victim:
            await hog.auth(hog_token)
            await victim.auth(victim_token)
            for n in range(60):
                await hog.send(
                    {
                        "t": "call",
                        "id": 1000 + n,
                        "token": sha(hog_token),
                        "server": "fx",
                        "method": "tools/call",
                        "params": big,
                    }
                )
            await anyio.sleep(2)  # the hog reads nothing while answers pile up
            started = anyio.current_time()
            answer = await victim.call(sha(victim_token), "fx", "tools/call", ECHO)
            assert answer["t"] == "answer" and anyio.current_time() - started < 5
            with anyio.fail_after(30), pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await hog.socket.recv()
            # closed with 1013, or cut off when it would not even read the close frame
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1013

    anyio.run(scenario)


def test_a_token_reaches_only_its_projects_servers(op: Cli) -> None:
    token = mint(op, "reach")

    async def scenario() -> None:
        async with peer(op) as link:
            assert (await link.auth(token))["reach"] == ["fx"]
            outside = await link.call(sha(token), "fy", "tools/call", ECHO)
            assert outside["t"] == "failure" and "not found" in outside["message"]
            unknown = await link.call(sha(token), "nope", "tools/list", None)
            assert unknown["t"] == "failure"

    anyio.run(scenario)


def test_revocation_is_pushed_and_the_token_stops_at_once(op: Cli) -> None:
    token = mint(op, "pushed")

    async def scenario() -> None:
        async with peer(op) as link:
            await link.auth(token)
            assert (await link.call(sha(token), "fx", "tools/call", ECHO))["t"] == "answer"
            await anyio.to_thread.run_sync(lambda: op.ok("revoke", "mcptoken", "pushed", "-p", "linked"))
            ended = await link.expect(lambda f: f.get("t") == "ended", seconds=5)
            assert ended["token"] == sha(token)
            refused = await link.call(sha(token), "fx", "tools/call", ECHO)
            assert refused["t"] == "failure" and refused["reason"] == "token"
            assert (await link.auth(token)) == {"ok": False, "reason": "revoked"}

    anyio.run(scenario)


def test_a_configuration_change_is_pushed_and_tokens_must_authenticate_again(op: Cli) -> None:
    token = mint(op, "rechecked")

    async def scenario() -> None:
        async with peer(op) as link:
            await link.auth(token)
            assert (await link.call(sha(token), "fx", "tools/call", ECHO))["t"] == "answer"
            await anyio.to_thread.run_sync(lambda: op.ok("create", "project", "bystander"))
            await link.expect(lambda f: f.get("t") == "changed", seconds=5)
            # refused as stale, unless mcpd has checked the token again by itself already
            stale = await link.call(sha(token), "fx", "tools/call", ECHO)
            assert stale["t"] == "answer" or (stale["t"] == "failure" and stale["reason"] == "token")
            assert (await link.auth(token))["ok"] is True
            assert (await link.call(sha(token), "fx", "tools/call", ECHO))["t"] == "answer"

    anyio.run(scenario)


def test_a_browser_cannot_open_the_link(op: Cli) -> None:
    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with peer(op, origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403

    anyio.run(scenario)


def test_bad_frames_change_nothing_and_the_link_keeps_working(op: Cli) -> None:
    token = mint(op, "sturdy")

    async def scenario() -> None:
        async with peer(op) as link:
            for junk in (
                "not json",
                "[1, 2]",
                '{"t": 5}',
                "[" * 5000 + "]" * 5000,
                '{"t": "call", "id": "x"}',
            ):
                await link.socket.send(junk)
            await link.send(
                {
                    "t": "call",
                    "id": 9001,
                    "token": sha(token),
                    "server": "fx",
                    "method": "tools/list",
                    "params": [],
                }
            )
            assert (await link.expect(lambda f: f.get("id") == 9001))["t"] == "failure"
            await link.auth(token)
            assert (await link.call(sha(token), "fx", "tools/call", ECHO))["t"] == "answer"

    anyio.run(scenario)


def test_one_links_unsubscribe_does_not_cut_off_another_links_subscription(op: Cli) -> None:
    """Subscriptions over links are counted with everyone else's: the upstream hears unsubscribe only
    when the last holder leaves, and resource updates reach the links that still hold it."""
    first, second = mint(op, "sub-a"), mint(op, "sub-b")
    uri = {"uri": "fixture://shared-note"}

    async def scenario() -> None:
        async with peer(op) as a, peer(op) as b:
            await a.auth(first)
            await b.auth(second)
            assert (await a.call(sha(first), "fx", "resources/subscribe", uri))["t"] == "answer"
            assert (await b.call(sha(second), "fx", "resources/subscribe", uri))["t"] == "answer"
            assert (await a.call(sha(first), "fx", "resources/unsubscribe", uri))["t"] == "answer"
            touched = await b.call(sha(second), "fx", "tools/call", {"name": "touch", "arguments": uri})
            assert touched["message"]["result"]["content"][0]["text"] == "touched", touched
            event = await b.expect(lambda f: f.get("t") == "event", seconds=5)
            assert event["message"]["method"] == "notifications/resources/updated"
            assert (await b.call(sha(second), "fx", "resources/unsubscribe", uri))["t"] == "answer"
            after = await b.call(sha(second), "fx", "tools/call", {"name": "touch", "arguments": uri})
            assert after["message"]["result"]["content"][0]["text"] == "not subscribed"

    anyio.run(scenario)


def test_a_revoked_token_presented_again_and_again_does_not_throttle_its_address(op: Cli) -> None:
    """A revoked or expired token is a real token whose clients have not heard yet (every linked
    mcplocal presents some after a revocation): only unknown ones count as guesses. Found by the
    loopback cluster, where the throttled address was another mcpd forwarding to a lease holder."""
    name = "revoked-often"
    token = mint(op, name)
    op.ok("revoke", "mcptoken", name, "-p", "linked")

    async def scenario() -> list[dict[str, Any]]:
        async with peer(op) as client:
            return [await client.socket_auth(token) for _ in range(120)]

    answers = anyio.run(scenario)
    assert all(a.get("introspection", {}).get("reason") == "revoked" for a in answers), answers[-1]


def test_frames_come_in_batches_only_to_a_link_that_chose_them(op: Cli) -> None:
    """wire.SUBPROTOCOL: a link that offers it sends and gets several frames a message (one per line);
    one that does not (an older mcplocal) gets one frame a message, as before. Calls with a token
    not presented here fail at once, so their failures are ready together: one message."""
    token, stranger = mint(op, "batched"), mint(op, "not-presented")
    calls = 50

    def frame(n: int, token: str) -> str:
        arguments = {"name": "echo", "arguments": {"text": f"call {n}"}}
        call = {"t": "call", "id": n, "token": sha(token), "server": "fx", "method": "tools/call"}
        return json.dumps({**call, "params": arguments})

    async def receive(socket: ClientConnection, batched: bool, first: int) -> tuple[dict[int, Any], int]:
        """The answers or failures of calls first..first+calls-1, and how many messages held them."""
        frames: dict[int, Any] = {}
        messages = 0
        with anyio.fail_after(30):
            while len(frames) < calls:
                message = str(await socket.recv())
                messages += 1
                for line in message.split("\n") if batched else [message]:
                    got = json.loads(line)
                    assert first <= got["id"] < first + calls, got
                    frames[got["id"]] = got.get("reason") or got["message"]["result"]["content"][0]["text"]
        return frames, messages

    async def scenario() -> None:
        async with peer(op, subprotocols=["mcpctl.link.v2"]) as link:
            assert link.socket.subprotocol == "mcpctl.link.v2"
            await link.auth(token)
            await link.socket.send("\n".join(frame(n, stranger) for n in range(calls)))  # one message
            refused, messages = await receive(link.socket, batched=True, first=0)
            assert refused == dict.fromkeys(range(calls), "token") and messages == 1
            await link.socket.send("\n".join(frame(n, token) for n in range(calls, 2 * calls)))
            answered, _ = await receive(link.socket, batched=True, first=calls)
            assert answered == {n: f"call {n}" for n in range(calls, 2 * calls)}
        async with peer(op) as old:
            assert old.socket.subprotocol is None
            for n in range(calls):
                await old.socket.send(frame(n, stranger))
            refused, messages = await receive(old.socket, batched=False, first=0)
            assert refused == dict.fromkeys(range(calls), "token") and messages == calls

    anyio.run(scenario)


def test_a_batch_is_bounded_and_junk_in_one_ends_the_link(op: Cli) -> None:
    """Only mcplocal batches, within wire.BATCH_BYTES: a larger batch is closed with 1009, a batch
    holding a bad line with 1008 (a decode per line of junk is not paid); on a link that did not
    choose batches a message with newlines is one bad frame, which changes nothing, as before."""
    token = mint(op, "bounded")
    cancel = json.dumps({"t": "cancel", "id": 1})

    async def closed_with(socket: ClientConnection) -> int:
        with anyio.fail_after(10), pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await socket.recv()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code

    async def scenario() -> None:
        async with peer(op, subprotocols=["mcpctl.link.v2"]) as link:
            await link.auth(token)
            await link.socket.send("\n".join([cancel] * 4000))  # ~90 KB of valid frames
            assert await closed_with(link.socket) == 1009
        async with peer(op, subprotocols=["mcpctl.link.v2"]) as link:
            await link.auth(token)
            await link.socket.send(cancel + "\n\n" * 1000 + cancel)
            assert await closed_with(link.socket) == 1008
        async with peer(op) as old:
            await old.socket.send(cancel + "\n" + cancel)
            await old.auth(token)
            assert (await old.call(sha(token), "fx", "tools/call", ECHO))["t"] == "answer"

    anyio.run(scenario)


def test_refused_tokens_are_throttled_per_address(op: Cli) -> None:
    """Each well-formed token costs a database lookup: past 100 refusals from one address within a
    minute, tokens from it are not checked for a while (last in this module: it uses up 127.0.0.1's
    budget)."""

    async def scenario() -> None:
        async with peer(op) as guesser:
            answers = [await guesser.socket_auth(tokens.generate()) for _ in range(120)]
        refused = [a for a in answers if "introspection" in a]
        throttled = [a for a in answers if "unavailable" in a]
        assert len(refused) <= 101 and throttled, (len(refused), len(throttled))
        assert all(a["introspection"]["reason"] == "unknown" for a in refused)

    anyio.run(scenario)
