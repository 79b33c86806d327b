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

from tests.e2e.conftest import Cli, login_admin
from tests.e2e.upstreams import FIXTURE, PYTHON, wait_running

pytestmark = pytest.mark.e2e


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

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(frame))

    async def expect(self, match: Callable[[dict[str, Any]], bool], seconds: float = 10) -> dict[str, Any]:
        with anyio.fail_after(seconds):
            while True:
                frame = json.loads(await self.socket.recv())
                if match(frame):
                    return frame

    async def auth(self, token: str) -> dict[str, Any]:
        ask = next(self.ids)
        await self.send({"t": "auth", "ask": ask, "bearer": token})
        frame = await self.expect(lambda f: f.get("t") == "authed" and f.get("ask") == ask)
        introspection: dict[str, Any] = frame["introspection"]
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


def test_bad_tokens_are_refused_and_a_guessing_link_is_closed(op: Cli) -> None:
    async def scenario() -> None:
        async with peer(op) as guesser:
            assert await guesser.auth("mcpctl_pat_notatoken") == {"ok": False, "reason": "malformed"}
            assert (await guesser.auth(12345))["ok"] is False  # type: ignore[arg-type]
            with pytest.raises(websockets.ConnectionClosed):
                for n in range(200):
                    await guesser.auth(f"mcpctl_pat_guess{n}")

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
            stale = await link.call(sha(token), "fx", "tools/call", ECHO)
            assert stale["t"] == "failure" and stale["reason"] == "token"
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
