"""DESIGN §12: tokens stop working at their expiry and on revocation — cached introspection never
outlives the token, revocation ends its open sessions and streams — and a session belongs to the
token that opened it; a call whose client went away is cancelled upstream. Embedded mcpd and split
mode (`mcplocal serve`), with the default 30 s introspection cache."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.rawmcp import MODERN, answer_of, headers, legacy_call, modern_body, modern_call, open_session
from tests.e2e.test_mcplocal_split import mcplocal_serve
from tests.e2e.upstreams import FIXTURE, PYTHON, wait_for, wait_running

pytestmark = pytest.mark.e2e
TOKEN_REFUSED = -32003


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "project", "life", "--server", "fx")
    op.ok("create", "project", "other", "--server", "fx")
    wait_running(op, "fx", 1)
    return op


def mint(op: Cli, name: str, project: str = "life", *extra: str) -> dict[str, Any]:
    minted: dict[str, Any] = op.json("create", "mcptoken", name, "-p", project, *extra)
    return minted


def rows(daemon: Mcpd, token_name: str) -> list[dict[str, Any]]:
    """The token's tool_call AuditEvents, from mcpd's own database."""
    with sqlite3.connect(daemon.data_dir / "mcpd.db", timeout=10) as db:
        db.row_factory = sqlite3.Row
        found = db.execute(
            "SELECT request_id, session_id, target, duration_ms, outcome FROM audit_events "
            "WHERE kind = 'tool_call' AND token_name = ?",
            (token_name,),
        )
        return [dict(r) for r in found]


async def stream_lasts(url: str, token: str, session: str, bound: float) -> float:
    """Open the session's GET stream; how long until the server ends it (TimeoutError past `bound`)."""
    started = time.monotonic()
    with anyio.fail_after(bound):
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as http,
            http.stream("GET", url, headers={**headers(token, session), "Accept": "text/event-stream"}) as r,
        ):
            assert r.status_code == 200
            async for _ in r.aiter_bytes():
                pass
    return time.monotonic() - started


def test_an_expired_token_is_refused_and_its_stream_ended_at_its_expiry(op: Cli) -> None:
    minted = mint(op, "short", "life", "--ttl", "4s")
    token = minted["token"]
    expires = datetime.fromisoformat(minted["mcpToken"]["status"]["expiresAt"].replace("Z", "+00:00"))
    url = f"{op.daemon.url}/projects/life/mcp"
    with httpx.Client(timeout=10) as http:
        session = open_session(http, url, token)  # introspection cached (30 s by default)
        assert answer_of(legacy_call(http, url, token, session, "fx__echo", {"text": "ok"}))["result"]
    left = expires.timestamp() - time.time()
    lasted = anyio.run(stream_lasts, url, token, session, left + 5)
    assert lasted <= left + 2, "the GET stream ends at the token's expiry"
    with httpx.Client(timeout=10) as http:
        refused = modern_call(http, url, token, "fx__echo", {"text": "late"})
    assert time.time() < expires.timestamp() + 3, "refused right after expiry, not after the cache TTL"
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")


def seconds_until_stream_ends(op: Cli, url: str, token: str, session: str, *change: str) -> float:
    """Hold the session's GET stream open, run the CLI `change`; how long until the stream ended."""

    async def scenario() -> float:
        async with anyio.create_task_group() as tg:
            lasted: list[float] = []

            async def watch() -> None:
                lasted.append(await stream_lasts(url, token, session, 20))

            tg.start_soon(watch)
            await anyio.sleep(1)  # the stream is open
            changed_at = time.monotonic()
            await anyio.to_thread.run_sync(lambda: op.ok(*change))
            with anyio.fail_after(10):
                while not lasted:
                    await anyio.sleep(0.05)
            return time.monotonic() - changed_at

    return anyio.run(scenario)


@pytest.mark.parametrize("verb", ["revoke", "delete"])
def test_revoking_or_deleting_a_token_ends_its_get_stream_and_sessions_at_once(op: Cli, verb: str) -> None:
    name = f"{verb}d-stream"
    token = mint(op, name)["token"]
    url = f"{op.daemon.url}/projects/life/mcp"
    with httpx.Client(timeout=10) as http:
        session = open_session(http, url, token)
    assert seconds_until_stream_ends(op, url, token, session, verb, "mcptoken", name, "-p", "life") < 8
    with httpx.Client(timeout=10) as http:
        after = legacy_call(http, url, token, session, "fx__echo", {"text": "no"})
    assert after.status_code == 401 and after.headers["www-authenticate"].startswith("Bearer")


def test_revoking_a_token_ends_its_split_mode_sessions_at_once_without_a_call(
    op: Cli, daemon: Mcpd, tmp_path: Path
) -> None:
    """mcpd tells every mcplocal on the data-plane link that the token ended: its streams end at
    once, although mcplocal cached its introspection for 30 s and the token makes no call."""
    token = mint(op, "split-stream")["token"]
    with mcplocal_serve(daemon, tmp_path, MCPLOCAL_TOKEN_POSITIVE_TTL_MS="30000") as base:
        url = f"{base}/projects/life/mcp"
        with httpx.Client(timeout=10) as http:
            session = open_session(http, url, token)
            assert answer_of(legacy_call(http, url, token, session, "fx__echo", {"text": "a"}))["result"]
        took = seconds_until_stream_ends(
            op, url, token, session, "revoke", "mcptoken", "split-stream", "-p", "life"
        )
        assert took < 3, f"the split-mode stream lasted {took:.1f}s after the revocation"
        with httpx.Client(timeout=10) as http:
            after = legacy_call(http, url, token, session, "fx__echo", {"text": "no"})
        assert after.status_code == 401 and after.headers["www-authenticate"].startswith("Bearer")


def test_revoking_a_token_ends_its_server_proxy_stream_at_once(op: Cli) -> None:
    """mcplocal (split mode) reaches servers through mcpd's per-server proxy with the caller's
    token: that proxy session and its GET stream end with the token too."""
    token = mint(op, "revoked-proxy")["token"]
    url = f"{op.daemon.url}/api/v1/projects/life/servers/fx/mcp"
    with httpx.Client(timeout=10) as http:
        session = open_session(http, url, token)

    async def scenario() -> float:
        lasted: list[float] = []
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                lasted.append(await stream_lasts(url, token, session, 20))

            tg.start_soon(watch)
            await anyio.sleep(1)
            revoked_at = time.monotonic()
            await anyio.to_thread.run_sync(lambda: op.ok("revoke", "mcptoken", "revoked-proxy", "-p", "life"))
            with anyio.fail_after(10):
                while not lasted:
                    await anyio.sleep(0.05)
            return time.monotonic() - revoked_at

    assert anyio.run(scenario) < 5, "ended at revocation, not at the next 15 s heartbeat or never"


def test_revoking_a_token_ends_its_2026_listen_stream(op: Cli) -> None:
    token = mint(op, "revoked-listen")["token"]
    url = f"{op.daemon.url}/projects/life/mcp"
    body = modern_body("subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    routing = {"Mcp-Protocol-Version": MODERN, "Mcp-Method": "subscriptions/listen"}

    async def scenario() -> tuple[int, float]:
        status: list[int] = []
        ended = anyio.Event()

        async def listen(http: httpx.AsyncClient) -> None:
            async with http.stream("POST", url, json=body, headers={**headers(token), **routing}) as r:
                status.append(r.status_code)
                async for _ in r.aiter_bytes():
                    pass
            ended.set()

        with anyio.fail_after(20):
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as http,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(listen, http)
                await anyio.sleep(1)  # the stream is open (it acknowledges at once)
                revoked_at = time.monotonic()
                await anyio.to_thread.run_sync(
                    lambda: op.ok("revoke", "mcptoken", "revoked-listen", "-p", "life")
                )
                await ended.wait()
                return status[0], time.monotonic() - revoked_at

    status, took = anyio.run(scenario)
    assert status in (200, 401) and took < 8


def test_split_mode_answers_401_once_mcpd_refuses_a_revoked_token(
    op: Cli, daemon: Mcpd, tmp_path: Path
) -> None:
    modern = mint(op, "split-modern")["token"]
    legacy = mint(op, "split-legacy")["token"]
    with (
        mcplocal_serve(daemon, tmp_path, MCPLOCAL_TOKEN_POSITIVE_TTL_MS="30000") as base,
        httpx.Client(timeout=30) as http,
    ):
        url = f"{base}/projects/life/mcp"
        assert answer_of(modern_call(http, url, modern, "fx__echo", {"text": "a"}))["result"]
        session = open_session(http, url, legacy)
        assert answer_of(legacy_call(http, url, legacy, session, "fx__echo", {"text": "a"}))["result"]
        op.ok("revoke", "mcptoken", "split-modern", "-p", "life")
        op.ok("revoke", "mcptoken", "split-legacy", "-p", "life")
        # the 2026-07-28 answer had not started: the request itself is answered 401
        first = modern_call(http, url, modern, "fx__echo", {"text": "b"})
        assert first.status_code == 401 and first.headers["www-authenticate"].startswith("Bearer"), first.text
        again = modern_call(http, url, modern, "fx__echo", {"text": "c"})
        assert again.status_code == 401
        # a legacy POST stream starts at once: a JSON-RPC error, then 401 (never an isError result)
        streamed = legacy_call(http, url, legacy, session, "fx__echo", {"text": "b"})
        if streamed.status_code == 200:
            assert answer_of(streamed)["error"]["code"] == TOKEN_REFUSED
        else:
            assert streamed.status_code == 401
        later = legacy_call(http, url, legacy, session, "fx__echo", {"text": "c"})
        assert later.status_code == 401 and later.headers["www-authenticate"].startswith("Bearer")


def test_a_2026_request_cannot_take_over_another_tokens_legacy_session(op: Cli, daemon: Mcpd) -> None:
    victim = mint(op, "victim")["token"]
    intruder = mint(op, "intruder", "other")["token"]
    with httpx.Client(timeout=10) as http:
        session = open_session(http, f"{daemon.url}/projects/life/mcp", victim)
        answer = modern_call(
            http,
            f"{daemon.url}/projects/other/mcp",
            intruder,
            "fx__echo",
            {"text": "x"},
            **{"Mcp-Session-Id": session, "X-Request-Id": "intruder0000000000000001"},
        )
        assert answer.status_code == 200 and answer_of(answer)["result"]
    found = wait_for("the intruder's audit row", lambda: rows(daemon, "intruder") or None, timeout=10)
    assert [r["session_id"] for r in found] == [
        None
    ]  # stateless: it names no session, least of all the victim's


def test_x_mcpctl_session_cannot_name_another_callers_session(op: Cli, daemon: Mcpd) -> None:
    token = mint(op, "forger")["token"]
    sha = hashlib.sha256(token.encode()).hexdigest()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}},
    }
    with httpx.Client(timeout=10) as http:
        answer = http.post(
            f"{daemon.url}/api/v1/projects/life/servers/fx/mcp",
            json=body,
            headers={**headers(token), "X-Mcpctl-Session": "victims-session"},
        )
    assert answer.status_code == 200 and answer_of(answer)["result"]
    found = wait_for("the forger's audit row", lambda: rows(daemon, "forger") or None, timeout=10)
    assert [r["session_id"] for r in found] == [f"{sha[:16]}/victims-session"]


def _abandon(url: str, call: Callable[[httpx.Client], httpx.Response]) -> None:
    """Make the call, and walk away after a second."""
    with httpx.Client(timeout=httpx.Timeout(10, read=1)) as http, pytest.raises(httpx.ReadTimeout):
        call(http)


@pytest.mark.parametrize("mode", ["embedded-legacy", "embedded-2026", "split-legacy", "split-2026"])
def test_a_call_abandoned_by_its_client_is_cancelled_upstream(
    op: Cli, daemon: Mcpd, tmp_path: Path, mode: str
) -> None:
    """The fixture's sleep tool would run 60 s; its AuditEvent is written when the call ends, so a
    row within seconds shows the gateway stopped waiting (and told the upstream)."""
    name = f"gone-{mode}"
    token = mint(op, name)["token"]
    sleep = ("fx__sleep", {"seconds": 60})

    def walk_away(base: str) -> None:
        url = f"{base}/projects/life/mcp"
        if mode.endswith("2026"):
            _abandon(url, lambda http: modern_call(http, url, token, *sleep))
            return
        with httpx.Client(timeout=10) as http:
            session = open_session(http, url, token)
        _abandon(url, lambda http: legacy_call(http, url, token, session, *sleep))

    if mode.startswith("split"):
        with mcplocal_serve(daemon, tmp_path) as base:
            walk_away(base)
            found = wait_for("the abandoned call's audit row", lambda: rows(daemon, name) or None, timeout=15)
    else:
        walk_away(daemon.url)
        found = wait_for("the abandoned call's audit row", lambda: rows(daemon, name) or None, timeout=15)
    assert [r["target"] for r in found] == ["sleep"]
    assert found[0]["duration_ms"] < 20_000 and found[0]["outcome"] == "error"
