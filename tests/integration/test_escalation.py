"""The escalation rule and token reach (DESIGN §4, §12): each finding of the attacker's review, as it
was reproduced, refused now — and the legitimate version of the same write still allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.integration.conftest import ADMIN_EMAIL, Api, assert_error, make_settings, running

pytestmark = pytest.mark.anyio

P = "pa"
VIEW_P = {"role": "view", "resource": "projects"}
MINT = {"role": "create", "resource": "mcptokens"}
RUN_S1 = {"role": "run", "resource": "servers", "name": "s1"}
RUN_ALL = {"role": "run", "resource": "servers"}
ADMIN_BINDINGS = [
    {"role": "edit", "resource": "*"},
    {"role": "create", "resource": "*"},
    {"role": "delete", "resource": "*"},
    {"role": "run", "resource": "*"},
    {"role": "run", "action": "*"},
]


async def _project(api: Api) -> None:
    for server in ("s1", "s2"):
        response = await api.put("servers", server, {"transport": "http", "url": "http://127.0.0.1:9/mcp"})
        assert response.status_code == 201, response.text
    assert (await api.put("projects", P, {"servers": ["s1", "s2"]})).status_code == 201


async def _mint(api: Api, headers: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
    response = await api.client.post(
        f"/api/v1/projects/{P}/mcptokens", json={"name": name, **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _reach(api: Api, token: str) -> list[str]:
    """What the token may use, as introspection and the project endpoint's view both say."""
    introspected = (await api.client.get("/api/v1/mcptokens/introspect", headers=_bearer(token))).json()
    view = await api.client.get(f"/api/v1/projects/{P}/endpoint", headers=_bearer(token))
    assert view.status_code == 200, view.text
    assert introspected["reach"] == sorted(view.json()["servers"])
    reach: list[str] = introspected["reach"]
    return reach


async def _proxy_status(api: Api, token: str, server: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = await api.client.post(
        f"/api/v1/projects/{P}/servers/{server}/mcp", json=body, headers=_bearer(token)
    )
    return response.status_code


@asynccontextmanager
async def _allowlisting(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """An mcpd whose operator allows one stdio command, and the admin's headers."""
    settings = make_settings(tmp_path, database_url, stdio_commands=["mcp-server-time"])
    async with running(settings) as (_, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "admin-password-1"}
        )
        yield client, _bearer(login.json()["token"])


# ---- 1. token reach follows the creator, and the parent ------------------------------------------------


async def test_a_token_of_a_user_who_may_run_nothing_reaches_no_server(api: Api) -> None:
    await _project(api)
    viewer = await api.user_with("viewer", VIEW_P, MINT)
    for mode in ("empty", "clone"):
        token = (await _mint(api, viewer, f"t-{mode}", rbac=mode))["token"]
        assert await _reach(api, token) == []
        assert await _proxy_status(api, token, "s1") == 404


async def test_a_token_minted_by_a_scoped_token_reaches_no_more_than_its_parent(api: Api) -> None:
    await _project(api)
    parent = (await _mint(api, api.admin, "parent", bindings=[RUN_S1, MINT, VIEW_P]))["token"]
    assert await _reach(api, parent) == ["s1"]
    child = (await _mint(api, _bearer(parent), "child", rbac="empty"))["token"]
    assert await _reach(api, child) == ["s1"]
    assert await _proxy_status(api, child, "s2") == 404


async def test_demoting_the_owner_narrows_every_token_at_once(api: Api) -> None:
    await _project(api)
    runner = await api.user_with("runner", VIEW_P, MINT, RUN_ALL)
    token = (await _mint(api, runner, "t"))["token"]
    assert await _reach(api, token) == ["s1", "s2"]
    narrowed = await api.put(
        "rbac",
        "runner-rbac",
        {"subjects": ["User:runner@example.com"], "roleBindings": [VIEW_P, MINT, RUN_S1]},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert await _reach(api, token) == ["s1"]


# ---- 2. removing permissions never grants ----------------------------------------------------------------


async def test_deleting_or_editing_a_tokens_definition_never_widens_its_reach(api: Api) -> None:
    await _project(api)
    minted = await _mint(api, api.admin, "one", bindings=[RUN_S1])
    token, definition = minted["token"], minted["mcpToken"]["status"]["rbacDefinition"]
    dropper = await api.user_with(
        "dropper", {"role": "delete", "resource": "rbac"}, {"role": "view", "resource": "rbac"}
    )
    assert_error(await api.client.delete(f"/api/v1/rbac/{definition}", headers=dropper), 403, "forbidden")
    sha = minted["mcpToken"]["status"]["tokenSha"]
    edited = await api.put("rbac", definition, {"subjects": [f"McpToken:{sha}"], "roleBindings": []})
    assert edited.status_code == 200, edited.text
    assert await _reach(api, token) == ["s1"]
    assert (await api.client.delete(f"/api/v1/rbac/{definition}", headers=api.admin)).status_code == 204
    assert await _reach(api, token) == ["s1"]
    assert await _proxy_status(api, token, "s2") == 404


# ---- 3. nobody may be left unable to edit RBAC -------------------------------------------------------------


async def test_edit_rbac_alone_cannot_empty_the_admins_definition(api: Api) -> None:
    editor = await api.user_with("editor", {"role": "edit", "resource": "rbac"})
    emptied = await api.put("rbac", "admins", {"subjects": [], "roleBindings": []}, headers=editor)
    assert_error(emptied, 403, "forbidden")
    fewer_subjects = await api.put(
        "rbac", "admins", {"subjects": [], "roleBindings": ADMIN_BINDINGS}, headers=editor
    )
    assert_error(fewer_subjects, 403, "forbidden")
    assert (await api.client.get("/api/v1/rbac/admins", headers=api.admin)).json()["spec"]["subjects"] == [
        "Group:admins"
    ]


async def test_no_write_leaves_the_system_without_someone_who_can_edit_rbac(api: Api) -> None:
    assert_error(await api.put("rbac", "admins", {"subjects": [], "roleBindings": []}), 409, "conflict")
    assert_error(await api.client.delete("/api/v1/rbac/admins", headers=api.admin), 409, "conflict")
    assert_error(await api.client.delete("/api/v1/groups/admins", headers=api.admin), 409, "conflict")
    name = (await api.client.get("/api/v1/users", headers=api.admin)).json()["items"][0]["metadata"]["name"]
    disabled = await api.client.patch(
        f"/api/v1/users/{name}", json={"spec": {"disabled": True}}, headers=api.admin
    )
    assert_error(disabled, 409, "conflict")
    # with a second administrator, the first may go
    await api.put("users", "second", {"email": "second@example.com", "password": "second-password-1"})
    assert (
        await api.put("groups", "admins", {"members": [ADMIN_EMAIL, "second@example.com"]})
    ).status_code == 200
    assert (await api.client.delete(f"/api/v1/users/{name}", headers=api.admin)).status_code == 204


async def test_admin_reset_restores_full_access_from_the_mcpd_host(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    async with running(settings) as (_, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "admin-password-1"}
        )
        assert login.status_code == 200
    mcpd = Path(sys.executable).with_name("mcpd")
    env = {**os.environ, "MCPD_DATA_DIR": str(settings.data_dir), "MCPD_DATABASE_URL": database_url}
    done = subprocess.run(
        [str(mcpd), "admin", "reset", "--email", "rescuer@example.com", "--password-stdin"],
        input="rescue-password-1\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rescue-password-1" not in done.stdout + done.stderr
    async with running(settings) as (_, client):
        login = await client.post(
            "/api/v1/auth/login", json={"email": "rescuer@example.com", "password": "rescue-password-1"}
        )
        assert login.status_code == 200, login.text
        rescuer = _bearer(login.json()["token"])
        admins = await client.get("/api/v1/rbac/admins", headers=rescuer)
        assert admins.status_code == 200
        assert admins.json()["spec"]["roleBindings"] == ADMIN_BINDINGS


# ---- 4, 5, 20. groups and users: joining, taking over, and grants waiting for a name ---------------------


async def test_edit_groups_cannot_add_oneself_to_admins(api: Api) -> None:
    joiner = await api.user_with(
        "joiner", {"role": "edit", "resource": "groups"}, {"role": "view", "resource": "users"}
    )
    joined = await api.client.patch(
        "/api/v1/groups/admins",
        json={"spec": {"members": [ADMIN_EMAIL, "joiner@example.com"]}},
        headers=joiner,
    )
    assert_error(joined, 403, "forbidden")
    members = (await api.client.get("/api/v1/groups/admins", headers=api.admin)).json()["spec"]["members"]
    assert members == [ADMIN_EMAIL]


@pytest.mark.parametrize(
    "change",
    [{"password": "taken-over-pass-1"}, {"disabled": True}, {"email": "elsewhere@example.com"}],
    ids=["password", "disabled", "email"],
)
async def test_edit_users_cannot_take_over_or_disable_a_user_who_holds_more(
    api: Api, change: dict[str, Any]
) -> None:
    editor = await api.user_with("editor", {"role": "edit", "resource": "users"})
    admin_name = (await api.client.get("/api/v1/users", headers=api.admin)).json()["items"][0]["metadata"][
        "name"
    ]
    response = await api.client.patch(f"/api/v1/users/{admin_name}", json={"spec": change}, headers=editor)
    assert_error(response, 403, "forbidden")
    login = await api.client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "admin-password-1"}
    )
    assert login.status_code == 200
    # someone who holds no more than the editor may be changed
    await api.put("users", "plain", {"email": "plain@example.com", "password": "plain-password-1"})
    plain = await api.client.patch(
        "/api/v1/users/plain", json={"spec": {"password": "new-password-12"}}, headers=editor
    )
    assert plain.status_code == 200, plain.text


async def test_an_email_rename_or_a_new_user_cannot_pick_up_grants_waiting_for_that_name(api: Api) -> None:
    waiting = {
        "subjects": ["User:ghost@example.com", "Group:ghosts"],
        "roleBindings": [{"role": "edit", "resource": "*"}],
    }
    assert (await api.put("rbac", "waiting", waiting)).status_code == 201
    editor = await api.user_with(
        "editor",
        {"role": "edit", "resource": "users"},
        {"role": "create", "resource": "users"},
        {"role": "create", "resource": "groups"},
        {"role": "view", "resource": "users"},
    )
    await api.put("users", "plain", {"email": "plain@example.com", "password": "plain-password-1"})
    renamed = await api.client.patch(
        "/api/v1/users/plain", json={"spec": {"email": "ghost@example.com"}}, headers=editor
    )
    assert_error(renamed, 403, "forbidden")
    created = await api.put(
        "users", "ghost", {"email": "ghost@example.com", "password": "ghost-password-1"}, headers=editor
    )
    assert_error(created, 403, "forbidden")
    group = await api.put("groups", "ghosts", {"members": ["plain@example.com"]}, headers=editor)
    assert_error(group, 403, "forbidden")
    empty_group = await api.put("groups", "ghosts", {"members": []}, headers=editor)
    assert empty_group.status_code == 201, empty_group.text


async def test_a_password_change_ends_that_users_sessions(api: Api) -> None:
    bob = await api.user_with("bob", VIEW_P)
    assert (await api.client.get("/api/v1/auth/me", headers=bob)).status_code == 200
    changed = await api.client.patch(
        "/api/v1/users/bob", json={"spec": {"password": "bob-new-password"}}, headers=api.admin
    )
    assert changed.status_code == 200, changed.text
    assert_error(await api.client.get("/api/v1/auth/me", headers=bob), 401, "unauthenticated")


# ---- 7. servers: secrets go only where their reader sends them ---------------------------------------------


async def test_a_server_write_that_routes_a_secret_needs_its_values(api: Api) -> None:
    await api.put("secrets", "db", {"data": {"PASSWORD": "hunter2-secret"}})
    masked = await api.user_with(
        "masked",
        {"role": "view", "resource": "secrets"},
        {"role": "create", "resource": "servers"},
        {"role": "edit", "resource": "servers"},
    )
    env = {"PW": {"secretRef": {"name": "db", "key": "PASSWORD"}}}
    spec = {
        "transport": "stdio",
        "command": "/bin/sh",
        "args": ["-c", 'printf %s "$PW" > /tmp/x'],
        "env": env,
    }
    assert_error(await api.put("servers", "leak", spec, headers=masked), 403, "forbidden")
    header = {"transport": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"X-Pw": env["PW"]}}
    assert (await api.put("servers", "remote", header)).status_code == 201
    moved = await api.client.patch(
        "/api/v1/servers/remote", json={"spec": {"url": "http://127.0.0.1:8/steal"}}, headers=masked
    )
    assert_error(moved, 403, "forbidden")
    labelled = await api.client.patch(
        "/api/v1/servers/remote", json={"metadata": {"labels": {"a": "b"}}}, headers=masked
    )
    assert labelled.status_code == 200, labelled.text
    reader = await api.user_with(
        "reader", {"role": "edit", "resource": "secrets"}, {"role": "create", "resource": "servers"}
    )
    assert (await api.put("servers", "allowed", spec, headers=reader)).status_code == 201


async def test_stdio_commands_outside_the_operators_allowlist_are_refused(
    tmp_path: Path, database_url: str
) -> None:
    async with _allowlisting(tmp_path, database_url) as (client, admin):
        body = {"metadata": {"name": "sh"}, "spec": {"transport": "stdio", "command": "/bin/sh"}}
        assert_error(await client.post("/api/v1/servers", json=body, headers=admin), 403, "forbidden")
        body = {"metadata": {"name": "time"}, "spec": {"transport": "stdio", "command": "mcp-server-time"}}
        assert (await client.post("/api/v1/servers", json=body, headers=admin)).status_code == 201


# ---- found in review: dormant grants, disabled users, races, probes, the allowlist's environment ----------


async def test_a_grant_for_nobody_yet_needs_the_writer_to_hold_it(api: Api) -> None:
    planter = await api.user_with(
        "planter", {"role": "create", "resource": "rbac"}, {"role": "edit", "resource": "rbac"}
    )
    planted = {
        "subjects": ["Group:oncall", "User:newhire@example.com"],
        "roleBindings": [{"role": "edit", "resource": "*"}],
    }
    assert_error(await api.put("rbac", "plant", planted, headers=planter), 403, "forbidden")
    assert (await api.put("rbac", "dormant", planted)).status_code == 201
    assert_error(await api.client.delete("/api/v1/rbac/dormant", headers=planter), 403, "forbidden")


async def test_a_disabled_users_grants_cannot_be_stripped_by_one_who_lacks_them(api: Api) -> None:
    await api.put(
        "users", "second", {"email": "second@example.com", "password": "second-password-1", "disabled": True}
    )
    assert (
        await api.put(
            "rbac",
            "second-extra",
            {"subjects": ["User:second@example.com"], "roleBindings": [{"role": "run", "action": "*"}]},
        )
    ).status_code == 201
    stripper = await api.user_with(
        "stripper",
        {"role": "delete", "resource": "users"},
        {"role": "view", "resource": "users"},
        {"role": "delete", "resource": "rbac"},
        {"role": "view", "resource": "rbac"},
    )
    assert_error(await api.client.delete("/api/v1/rbac/second-extra", headers=stripper), 403, "forbidden")
    assert_error(await api.client.delete("/api/v1/users/second", headers=stripper), 403, "forbidden")


async def test_racing_writes_cannot_escalate_together(api: Api) -> None:
    """Planting a grant for a group and joining it, at the same moment: each alone is checked
    against a snapshot the other has not changed yet, unless guarded writes are serialized."""
    racer = await api.user_with(
        "racer",
        {"role": "create", "resource": "rbac"},
        {"role": "edit", "resource": "rbac"},
        {"role": "create", "resource": "groups"},
        {"role": "edit", "resource": "groups"},
        {"role": "view", "resource": "users"},
    )
    for i in range(10):
        plant = {"subjects": [f"Group:g{i}"], "roleBindings": [{"role": "edit", "resource": "*"}]}
        await anyio_gather(
            api.put("rbac", f"plant{i}", plant, headers=racer),
            api.put("groups", f"g{i}", {"members": ["racer@example.com"]}, headers=racer),
        )
        me = (await api.client.get("/api/v1/auth/me", headers=racer)).json()
        assert {"role": "edit", "resource": "*"} not in me["bindings"]


async def anyio_gather(*calls: Any) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def one(i: int, call: Any) -> None:
        results[i] = await call

    async with anyio.create_task_group() as group:
        for i, call in enumerate(calls):
            group.start_soon(one, i, call)
    return results


async def test_a_health_check_that_calls_a_tool_needs_run_on_the_server(api: Api) -> None:
    assert (
        await api.put("servers", "remote", {"transport": "http", "url": "http://127.0.0.1:9/mcp"})
    ).status_code == 201
    editor = await api.user_with("editor", {"role": "edit", "resource": "servers"})
    probe = {"spec": {"healthCheck": {"tool": "drop_database", "arguments": {"confirm": True}}}}
    assert_error(
        await api.client.patch("/api/v1/servers/remote", json=probe, headers=editor), 403, "forbidden"
    )
    runner = await api.user_with("runner", {"role": "edit", "resource": "servers"}, RUN_ALL)
    assert (await api.client.patch("/api/v1/servers/remote", json=probe, headers=runner)).status_code == 200


async def test_an_allowlisted_command_cannot_be_redirected_through_its_environment(
    tmp_path: Path, database_url: str
) -> None:
    async with _allowlisting(tmp_path, database_url) as (client, admin):
        for env in ({"PATH": "/tmp/evil"}, {"LD_PRELOAD": "/tmp/evil.so"}, {"PYTHONPATH": "/tmp/evil"}):
            spec = {"transport": "stdio", "command": "mcp-server-time", "env": env}
            body = {"metadata": {"name": "time"}, "spec": spec}
            assert_error(await client.post("/api/v1/servers", json=body, headers=admin), 403, "forbidden")
