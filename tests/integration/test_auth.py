"""Login sessions, logout, /auth/me, and the 401 paths."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, assert_error

pytestmark = pytest.mark.anyio


async def test_bootstrap_admin_can_log_in_and_is_in_admins(api: Api) -> None:
    me = await api.client.get("/api/v1/auth/me", headers=api.admin)
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["spec"]["email"] == ADMIN_EMAIL
    assert body["groups"] == ["admins"]
    assert {"role": "run", "action": "*"} in body["bindings"]
    assert {"role": "edit", "resource": "*"} in body["bindings"]


async def test_login_answers_an_opaque_token_with_expiry_and_user(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL.upper(), "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token"].startswith("mcpctl_ses_") and len(body["token"]) > 40
    assert body["expiresAt"]
    assert "password" not in body["user"]["spec"]


async def test_wrong_password_is_401_and_recorded_as_denied_login(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "nope-nope"}
    )
    assert_error(response, 401, "unauthenticated")
    events = await api.client.get("/api/v1/audit/events", params={"kind": "login"}, headers=api.admin)
    outcomes = [e["spec"]["outcome"] for e in events.json()["items"]]
    assert "denied" in outcomes and "ok" in outcomes


async def test_unknown_user_is_401_like_a_wrong_password(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/login", json={"email": "who@example.com", "password": "x" * 9}
    )
    assert_error(response, 401, "unauthenticated")


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer mcpctl_ses_unknown"])
async def test_api_without_a_valid_bearer_is_401_with_www_authenticate(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert_error(await api.client.get("/api/v1/projects", headers=headers), 401, "unauthenticated")


async def test_logout_ends_the_session(api: Api) -> None:
    headers = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (await api.client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert_error(await api.client.get("/api/v1/auth/me", headers=headers), 401, "unauthenticated")
    # other sessions are unaffected
    assert (await api.client.get("/api/v1/auth/me", headers=api.admin)).status_code == 200


async def test_disabled_user_cannot_log_in_and_its_sessions_stop_working(api: Api) -> None:
    headers = await api.user_with("carol", {"role": "view", "resource": "projects"})
    assert (await api.client.get("/api/v1/projects", headers=headers)).status_code == 200
    patched = await api.client.patch(
        "/api/v1/users/carol", json={"spec": {"disabled": True}}, headers=api.admin
    )
    assert patched.status_code == 200, patched.text
    assert_error(await api.client.get("/api/v1/projects", headers=headers), 401, "unauthenticated")
    response = await api.client.post(
        "/api/v1/auth/login", json={"email": "carol@example.com", "password": "user-password-1"}
    )
    assert_error(response, 401, "unauthenticated")


async def test_expired_session_is_401(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import make_settings, running

    async with running(make_settings(tmp_path, database_url, session_ttl="1s")) as (_, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        import anyio

        with anyio.fail_after(5):
            while (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200:
                await anyio.sleep(0.2)
        assert_error(await client.get("/api/v1/auth/me", headers=headers), 401, "unauthenticated")


async def test_session_tokens_are_stored_hashed(api: Api) -> None:
    import sqlalchemy as sa

    from mcpctl.storage import tables

    token = api.admin["Authorization"].removeprefix("Bearer ")
    async with api.app.state.mcpd.db.read() as session:
        stored = (await session.execute(sa.select(tables.LoginSession.token_sha))).scalars().all()
    assert stored and token not in stored and all(len(s) == 64 for s in stored)


async def test_an_outdated_password_hash_is_upgraded_at_the_next_login(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from mcpctl.storage import tables
    from tests.integration.conftest import make_settings, running

    async def stored_hash(app) -> str:  # type: ignore[no-untyped-def]
        async with app.state.mcpd.db.read() as session:
            return str((await session.execute(sa.select(tables.User.password_hash))).scalar())

    async with running(make_settings(tmp_path, database_url)) as (app, _):
        before = await stored_hash(app)
    stronger = make_settings(tmp_path, database_url, password_hash_time_cost=2, password_hash_memory_kib=2048)
    async with running(stronger) as (app, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200
        after = await stored_hash(app)
    assert "m=1024,t=1" in before and "m=2048,t=2" in after
    async with running(stronger) as (_, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200
