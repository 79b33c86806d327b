"""Data survives a restart; health, readiness, metrics and the OpenAPI document are served."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mcpctl.storage.tables import Base
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings, running

pytestmark = pytest.mark.anyio


async def test_data_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    async with running(settings) as (_, client):
        token = (
            await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"metadata": {"name": "s"}, "spec": {"data": {"K": "v"}}}
        assert (await client.post("/api/v1/secrets", json=body, headers=headers)).status_code == 201
    async with running(settings) as (_, client):
        # the session, the secret (decryptable with the persisted key) and the single admin survive
        got = await client.get("/api/v1/secrets/s", params={"showValues": "true"}, headers=headers)
        assert got.status_code == 200 and got.json()["spec"]["data"] == {"K": "v"}
        users = (await client.get("/api/v1/users", headers=headers)).json()["items"]
        assert [u["spec"]["email"] for u in users] == [ADMIN_EMAIL]
    assert oct((tmp_path / "data" / "secret.key").stat().st_mode & 0o777) == "0o600"


async def test_migrations_match_the_table_definitions(tmp_path: Path, database_url: str) -> None:
    async with running(make_settings(tmp_path, database_url)) as (app, _):
        engine = app.state.mcpd.db._read_engine
        async with engine.connect() as conn:

            def diff(sync_conn: sa.Connection) -> list[object]:
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
                return list(compare_metadata(ctx, Base.metadata))

            assert await conn.run_sync(diff) == []


async def test_health_readiness_metrics_and_openapi(tmp_path: Path, database_url: str) -> None:
    async with running(make_settings(tmp_path, database_url)) as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json()["database"] == "ok"
        await client.get("/api/v1/projects")
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        token = (await client.post("/api/v1/auth/login", json=login)).json()["token"]
        metrics = (await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})).text
        assert 'route="/api/v1/projects",status="401"' in metrics
        assert "mcpd_http_request_duration_seconds_bucket" in metrics
        spec = (await client.get("/openapi.json")).json()
        assert "/api/v1/servers/{name}" in spec["paths"]
        assert "422" not in str(spec["paths"]["/api/v1/servers"]["post"]["responses"])


async def test_generated_admin_credentials_are_written_0600(tmp_path: Path, database_url: str) -> None:
    from mcpctl.mcpd.settings import Settings

    settings = Settings(data_dir=tmp_path / "d", database_url=database_url)
    async with running(settings) as (_, client):
        path = tmp_path / "d" / "admin-credentials"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        import yaml

        creds = yaml.safe_load(path.read_text())
        login = await client.post(
            "/api/v1/auth/login", json={"email": creds["email"], "password": creds["password"]}
        )
        assert login.status_code == 200
