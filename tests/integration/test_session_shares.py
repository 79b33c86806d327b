"""Legacy sessions of the project endpoint are shared fairly: capped per token and per project, the
caller's own oldest session closed to make room, 429 with Retry-After for a caller with nothing to
give up — never someone else's outage (DESIGN §12, security finding 6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcpctl.mcpd.app import create_app
from mcpctl.mcpd.gateway import Gateway
from mcpctl.mcplocal.settings import GatewaySettings
from tests.e2e.rawmcp import INITIALIZE
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings

pytestmark = pytest.mark.anyio

WAIT = 30.0
ACCEPT = {"Accept": "application/json, text/event-stream"}
PER_TOKEN, PER_PROJECT = 3, 5


@dataclass
class Endpoint:
    client: httpx.AsyncClient
    gateway: Gateway
    admin: dict[str, str]

    async def mint(self, project: str, name: str) -> str:
        response = await self.client.post(
            f"/api/v1/projects/{project}/mcptokens", json={"name": name}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    async def post(self, project: str, token: str, body: Any, session: str | None = None) -> httpx.Response:
        headers = {**ACCEPT, "Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        if session is not None:
            headers["Mcp-Session-Id"] = session
        return await self.client.post(f"/projects/{project}/mcp", json=body, headers=headers)

    async def open(self, project: str, token: str) -> str:
        response = await self.post(project, token, INITIALIZE)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.post(project, token, initialized, session)).status_code == 202
        # a request through the router: it keeps a notification target for the session
        listed = await self.post(project, token, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
        assert listed.status_code == 200, listed.text
        return session


@asynccontextmanager
async def endpoint(tmp_path: Path, database_url: str) -> AsyncIterator[Endpoint]:
    limits = GatewaySettings(max_sessions_per_token=PER_TOKEN, max_sessions_per_project=PER_PROJECT)
    app = create_app(make_settings(tmp_path, database_url, supervise=False), limits)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as client:
            login = await client.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            admin = {"Authorization": f"Bearer {login.json()['token']}"}
            for project in ("p1", "p2"):
                body = {"metadata": {"name": project}, "spec": {}}
                assert (
                    await client.put(f"/api/v1/projects/{project}", json=body, headers=admin)
                ).status_code == 201
            gateway = app.state.mcpd.gateway
            assert gateway is not None
            yield Endpoint(client, gateway, admin)


async def settled(gateway: Gateway, sessions: int) -> int:
    """Tasks running once the evicted sessions' server tasks have had the chance to end."""
    with anyio.fail_after(WAIT):
        while gateway.app.sessions.open_sessions != sessions:
            await anyio.sleep(0.01)
        for _ in range(20):  # a few turns of the loop for terminated transports to wind down
            await anyio.sleep(0)
    return len(asyncio.all_tasks())


async def test_a_token_over_its_cap_loses_its_own_oldest_session_and_its_memory(
    tmp_path: Path, database_url: str
) -> None:
    async with endpoint(tmp_path, database_url) as ep:
        token, neighbour = await ep.mint("p1", "flood"), await ep.mint("p1", "neighbour")
        kept = await ep.open("p1", neighbour)
        opened = [await ep.open("p1", token) for _ in range(PER_TOKEN)]
        tasks_at_cap = await settled(ep.gateway, PER_TOKEN + 1)
        opened += [await ep.open("p1", token) for _ in range(20)]
        tasks_after = await settled(ep.gateway, PER_TOKEN + 1)

        gone = await ep.post("p1", token, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, opened[0])
        assert gone.status_code == 404
        for session in [*opened[-PER_TOKEN:]]:
            alive = await ep.post("p1", token, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, session)
            assert alive.status_code == 200, alive.text
        ping = await ep.post("p1", neighbour, {"jsonrpc": "2.0", "id": 4, "method": "ping"}, kept)
        assert ping.status_code == 200, ping.text
        ledger = ep.gateway.app.sessions.ledger
        assert (len(ledger), ledger.held_in("p1")) == (PER_TOKEN + 1, PER_TOKEN + 1)
        assert set(ep.gateway.router.sessions) == {kept, *opened[-PER_TOKEN:]}
        assert tasks_after <= tasks_at_cap  # the evicted sessions' server tasks ended


async def test_a_full_project_makes_a_token_without_sessions_wait_and_leaves_other_projects_alone(
    tmp_path: Path, database_url: str
) -> None:
    async with endpoint(tmp_path, database_url) as ep:
        holders = [await ep.mint("p1", f"holder-{n}") for n in range(2)]
        first = [await ep.open("p1", holders[0]) for _ in range(PER_TOKEN)]
        for _ in range(PER_PROJECT - PER_TOKEN):
            await ep.open("p1", holders[1])

        refused = await ep.post("p1", await ep.mint("p1", "latecomer"), INITIALIZE)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert refused.json()["error"]["details"] == {"limit": "sessions_per_project"}
        assert int(refused.headers["retry-after"]) >= 1
        assert "mcp-session-id" not in refused.headers

        # a holder pays with its own oldest session
        await ep.open("p1", holders[0])
        assert (
            await ep.post("p1", holders[0], {"jsonrpc": "2.0", "id": 5, "method": "ping"}, first[0])
        ).status_code == 404
        # another project is not affected at all
        await ep.open("p2", await ep.mint("p2", "elsewhere"))
        assert ep.gateway.app.sessions.ledger.held_in("p1") == PER_PROJECT
