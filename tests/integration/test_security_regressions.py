"""Privilege boundaries found by review: no escalation through RBAC writes, no token outliving the
token that minted it, no grant outliving its user or group, and revocation touching only its own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, assert_error

pytestmark = pytest.mark.anyio

P = "proj"
VIEW_P = {"role": "view", "resource": "projects"}
MINT = {"role": "create", "resource": "mcptokens"}


async def _mint(api: Api, headers: dict[str, str], path: str = "/api/v1/mcptokens", **body: Any) -> Any:
    return await api.client.post(
        path, json={"project": P, **body} if path == "/api/v1/mcptokens" else body, headers=headers
    )


async def test_writing_an_rbac_definition_cannot_grant_more_than_the_writer_holds(api: Api) -> None:
    await api.put("projects", P, {})
    writer = await api.user_with(
        "writer", {"role": "edit", "resource": "rbac"}, {"role": "create", "resource": "rbac"}, VIEW_P
    )
    body = {
        "metadata": {"name": "grab"},
        "spec": {
            "subjects": ["User:writer@example.com"],
            "roleBindings": [{"role": "edit", "resource": "*"}],
        },
    }
    assert_error(await api.client.post("/api/v1/rbac", json=body, headers=writer), 403, "forbidden")
    assert_error(await api.client.get("/api/v1/rbac/grab", headers=api.admin), 404, "not_found")
    body["spec"]["roleBindings"] = [VIEW_P]
    assert (await api.client.post("/api/v1/rbac", json=body, headers=writer)).status_code == 201


async def test_revoking_a_token_removes_it_from_shared_definitions_without_deleting_them(api: Api) -> None:
    await api.put("projects", P, {})
    minted = (await _mint(api, api.admin, name="t", bindings=[VIEW_P])).json()
    sha = minted["mcpToken"]["status"]["tokenSha"]
    shared = await api.put(
        "rbac", "shared", {"subjects": ["Group:admins", f"McpToken:{sha}"], "roleBindings": [VIEW_P]}
    )
    assert shared.status_code == 201
    revoked = await api.client.post(f"/api/v1/projects/{P}/mcptokens/t/revoke", headers=api.admin)
    assert revoked.status_code == 200
    left = (await api.client.get("/api/v1/rbac/shared", headers=api.admin)).json()
    assert left["spec"]["subjects"] == ["Group:admins"]
    assert_error(await api.client.get(f"/api/v1/rbac/mcptoken-{P}-t", headers=api.admin), 404, "not_found")


async def test_a_token_minted_by_a_token_neither_outlives_nor_survives_it(api: Api) -> None:
    await api.put("projects", P, {})
    parent = (await _mint(api, api.admin, name="parent", ttl="1h", bindings=[VIEW_P, MINT])).json()
    as_parent = {"Authorization": f"Bearer {parent['token']}"}
    path = f"/api/v1/projects/{P}/mcptokens"
    assert_error(await _mint(api, as_parent, path, name="forever", rbac="clone", ttl="never"), 400, "invalid")
    assert_error(await _mint(api, as_parent, path, name="longer", rbac="clone", ttl="2h"), 400, "invalid")
    child = await _mint(api, as_parent, path, name="child", rbac="clone", ttl="30m")
    assert child.status_code == 201, child.text
    as_child = {"Authorization": f"Bearer {child.json()['token']}"}
    assert (await api.client.get(f"/api/v1/projects/{P}", headers=as_child)).status_code == 200
    assert (await api.client.post(f"{path}/parent/revoke", headers=api.admin)).status_code == 200
    assert_error(await api.client.get(f"/api/v1/projects/{P}", headers=as_child), 401, "unauthenticated")
    events = (
        await api.client.get("/api/v1/audit/events", params={"kind": "token_revoked"}, headers=api.admin)
    ).json()["items"]
    assert sorted(e["spec"]["tokenName"] for e in events) == ["child", "parent"]


async def test_a_deleted_user_leaves_no_grant_or_working_token_behind(api: Api) -> None:
    await api.put("projects", P, {})
    bob = await api.user_with("bob", VIEW_P, MINT)
    token = (await _mint(api, bob, name="bobs", bindings=[VIEW_P])).json()["token"]
    as_token = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get(f"/api/v1/projects/{P}", headers=as_token)).status_code == 200
    assert (
        await api.client.patch("/api/v1/users/bob", json={"spec": {"disabled": True}}, headers=api.admin)
    ).status_code == 200
    assert_error(await api.client.get(f"/api/v1/projects/{P}", headers=as_token), 401, "unauthenticated")
    assert (await api.client.delete("/api/v1/users/bob", headers=api.admin)).status_code == 204
    # someone who registers the same address later inherits nothing
    assert (
        await api.put("users", "robert", {"email": "bob@example.com", "password": "robert-pass-1"})
    ).status_code == 201
    robert = await api.login("bob@example.com", "robert-pass-1")
    me = (await api.client.get("/api/v1/auth/me", headers=robert)).json()
    assert me["bindings"] == []
    tokens = (await api.client.get(f"/api/v1/projects/{P}/mcptokens", headers=api.admin)).json()["items"]
    assert [t["status"]["status"] for t in tokens] == ["revoked"]


async def test_a_recreated_group_inherits_no_old_grants(api: Api) -> None:
    await api.put("groups", "ops", {"members": []})
    await api.put("rbac", "ops-view", {"subjects": ["Group:ops"], "roleBindings": [VIEW_P]})
    assert (await api.client.delete("/api/v1/groups/ops", headers=api.admin)).status_code == 204
    definition = (await api.client.get("/api/v1/rbac/ops-view", headers=api.admin)).json()
    assert definition["spec"]["subjects"] == []


async def test_put_answers_the_same_whether_or_not_an_invisible_object_exists(api: Api) -> None:
    await api.put("secrets", "real", {"data": {"K": "v"}})
    outsider = await api.user_with("outsider", VIEW_P)
    for name in ("real", "imaginary"):
        body = {"metadata": {"name": name}, "spec": {"data": {"K": "x"}}}
        assert_error(
            await api.client.put(f"/api/v1/secrets/{name}", json=body, headers=outsider), 403, "forbidden"
        )


async def test_references_to_invisible_objects_read_as_unknown(api: Api) -> None:
    await api.put("secrets", "hidden", {"data": {"TOKEN": "t"}})
    await api.put("servers", "invisible", {"transport": "http", "url": "https://x.example.com/mcp"})
    await api.put("projects", P, {})
    maker = await api.user_with(
        "maker",
        {"role": "create", "resource": "servers"},
        {"role": "view", "resource": "servers", "name": "mine"},
        {"role": "edit", "resource": "projects", "name": P},
    )
    refs = {
        "transport": "stdio",
        "command": "x",
        "env": {"A": {"secretRef": {"name": "hidden", "key": "NOPE"}}},
    }
    bad_key = await api.client.post(
        "/api/v1/servers", json={"metadata": {"name": "mine"}, "spec": refs}, headers=maker
    )
    refs["env"]["A"]["secretRef"]["name"] = "nosuch"  # type: ignore[index]
    missing = await api.client.post(
        "/api/v1/servers", json={"metadata": {"name": "mine"}, "spec": refs}, headers=maker
    )
    assert_error(bad_key, 400, "invalid")
    assert_error(missing, 400, "invalid")
    assert bad_key.json()["error"]["message"].replace("hidden", "X") == missing.json()["error"][
        "message"
    ].replace("nosuch", "X")
    attach = await api.client.patch(
        f"/api/v1/projects/{P}", json={"spec": {"servers": ["invisible"]}}, headers=maker
    )
    assert_error(attach, 400, "invalid")


async def test_status_lists_only_what_the_reader_may_view(api: Api) -> None:
    await api.put("servers", "shared", {"transport": "http", "url": "https://x.example.com/mcp"})
    await api.put("projects", "open", {"servers": ["shared"]})
    await api.put("projects", "secret-proj", {"servers": ["shared"]})
    reader = await api.user_with(
        "reader",
        {"role": "view", "resource": "servers"},
        {"role": "view", "resource": "projects", "name": "open"},
    )
    body = (await api.client.get("/api/v1/servers/shared", headers=reader)).json()
    assert body["status"]["projects"] == ["open"]


async def test_deleting_a_project_deletes_its_tokens_files_and_audits_each(api: Api) -> None:
    from pathlib import Path

    await api.put("projects", P, {})
    minted = (await _mint(api, api.admin, name="filed", writeFile=True, bindings=[VIEW_P])).json()
    path = Path(minted["tokenPath"])
    assert path.exists()
    assert (await api.client.delete(f"/api/v1/projects/{P}", headers=api.admin)).status_code == 204
    assert not path.exists()
    events = (
        await api.client.get("/api/v1/audit/events", params={"kind": "token_deleted"}, headers=api.admin)
    ).json()["items"]
    assert [(e["spec"]["tokenName"], e["spec"]["project"]) for e in events] == [("filed", P)]
    assert_error(
        await api.client.get(f"/api/v1/rbac/mcptoken-{P}-filed", headers=api.admin), 404, "not_found"
    )
    token = {"Authorization": f"Bearer {minted['token']}"}
    assert_error(await api.client.get(f"/api/v1/projects/{P}", headers=token), 401, "unauthenticated")
