"""The app in-process through httpx.ASGITransport against a real, migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcpctl.mcpd.app import Mcpd, create_app
from mcpctl.mcpd.settings import Settings

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


@dataclass
class Api:
    """An httpx client on the app, plus helpers to act as different users."""

    client: httpx.AsyncClient
    app: Mcpd
    admin: dict[str, str]

    async def login(self, email: str, password: str) -> dict[str, str]:
        response = await self.client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    async def put(
        self,
        plural: str,
        name: str,
        spec: dict[str, Any],
        *,
        labels: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}
        return await self.client.put(f"/api/v1/{plural}/{name}", json=body, headers=headers or self.admin)

    async def user_with(self, name: str, *bindings: dict[str, str]) -> dict[str, str]:
        """Create a user bound to exactly `bindings` and return its auth headers."""
        email = f"{name}@example.com"
        assert (
            await self.put("users", name, {"email": email, "password": "user-password-1"})
        ).status_code == 201
        if bindings:
            response = await self.put(
                "rbac", f"{name}-rbac", {"subjects": [f"User:{email}"], "roleBindings": list(bindings)}
            )
            assert response.status_code == 201, response.text
        return await self.login(email, "user-password-1")


def make_settings(tmp_path: Path, database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "bootstrap_admin_email": ADMIN_EMAIL,
        "bootstrap_admin_password": ADMIN_PASSWORD,
        # Cheap hashes keep the suite fast; the default cost is covered by tests/unit/test_crypto.py.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
    }
    return Settings(**{**values, **extra})


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Mcpd, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mcpd.test") as client:
            yield app, client


@pytest.fixture
async def api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    async with running(make_settings(tmp_path, database_url)) as (app, client):
        response = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        yield Api(client=client, app=app, admin={"Authorization": f"Bearer {response.json()['token']}"})


AssertError = Callable[[httpx.Response, int, str], None]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """Every error has the one shape: {"error": {code, message, details}, "requestId"}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "requestId"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["requestId"] == response.headers["x-request-id"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
