"""Every resource route on both databases: create, get, list, replace (apply), patch, delete."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, assert_error

pytestmark = pytest.mark.anyio

STDIO = {"transport": "stdio", "command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}


async def seed(api: Api) -> None:
    assert (
        await api.put("users", "bob", {"email": "bob@example.com", "password": "s3cret-Pass"})
    ).status_code == 201
    assert (await api.put("secrets", "grafana", {"data": {"TOKEN": "glsa_xxx"}})).status_code == 201
    server = {**STDIO, "env": {"TOKEN": {"secretRef": {"name": "grafana", "key": "TOKEN"}}}, "replicas": 2}
    assert (await api.put("servers", "time", server, labels={"team": "obs"})).status_code == 201
    http = {
        "transport": "http",
        "url": "https://docs.example.com/mcp",
        "headers": {"Authorization": {"secretRef": {"name": "grafana", "key": "TOKEN"}}},
    }
    assert (await api.put("servers", "docs", http)).status_code == 201
    assert (await api.put("projects", "monitoring", {"servers": ["time", "docs"]})).status_code == 201


async def test_created_objects_read_back_in_the_resource_shape(api: Api) -> None:
    await seed(api)
    body = (await api.client.get("/api/v1/servers/time", headers=api.admin)).json()
    assert body["kind"] == "Server"
    assert body["metadata"]["name"] == "time" and body["metadata"]["labels"] == {"team": "obs"}
    assert {"id", "createdAt", "updatedAt"} <= set(body["metadata"])
    assert body["spec"]["replicas"] == 2 and body["spec"]["args"] == ["--local-timezone", "UTC"]
    assert body["status"] == {"projects": ["monitoring"]}
    project = (await api.client.get("/api/v1/projects/monitoring", headers=api.admin)).json()
    assert project["spec"] == {
        "servers": ["time", "docs"],
        "proxyModel": "direct",
        "toolPrefixMode": "always",
        "toolNameSeparator": "__",
    }


async def test_list_is_a_list_ordered_by_name_and_filtered_by_label_selector(api: Api) -> None:
    await seed(api)
    listed = (await api.client.get("/api/v1/servers", headers=api.admin)).json()
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["docs", "time"]
    for selector, names in (
        ("team=obs", ["time"]),
        ("team!=obs", ["docs"]),
        ("!team", ["docs"]),
        ("team in (obs,x)", ["time"]),
        ("team", ["time"]),
    ):
        got = (
            await api.client.get("/api/v1/servers", params={"labelSelector": selector}, headers=api.admin)
        ).json()
        assert [i["metadata"]["name"] for i in got["items"]] == names, selector
    assert_error(
        await api.client.get("/api/v1/servers", params={"labelSelector": "a=(b"}, headers=api.admin),
        400,
        "invalid",
    )


async def test_project_scoped_server_list_keeps_project_order(api: Api) -> None:
    await seed(api)
    got = (await api.client.get("/api/v1/projects/monitoring/servers", headers=api.admin)).json()
    assert [i["metadata"]["name"] for i in got["items"]] == ["time", "docs"]
    assert_error(await api.client.get("/api/v1/projects/nope/servers", headers=api.admin), 404, "not_found")


async def test_put_reports_created_configured_unchanged(api: Api) -> None:
    spec = {"servers": []}
    first = await api.put("projects", "p1", spec)
    assert first.status_code == 201 and first.headers["mcpctl-result"] == "created"
    again = await api.put("projects", "p1", spec)
    assert again.status_code == 200 and again.headers["mcpctl-result"] == "unchanged"
    changed = await api.put("projects", "p1", {"servers": [], "toolPrefixMode": "never"})
    assert changed.headers["mcpctl-result"] == "configured"
    relabeled = await api.put("projects", "p1", {"servers": [], "toolPrefixMode": "never"}, labels={"a": "b"})
    assert relabeled.headers["mcpctl-result"] == "configured"


async def test_every_object_read_back_applies_unchanged(api: Api) -> None:
    await seed(api)
    await api.put("groups", "devs", {"members": ["bob@example.com"]})
    await api.put(
        "rbac",
        "viewers",
        {"subjects": ["Group:devs"], "roleBindings": [{"role": "view", "resource": "projects"}]},
    )
    for plural in ("users", "groups", "rbac", "projects", "servers", "secrets"):
        items = (await api.client.get(f"/api/v1/{plural}", headers=api.admin)).json()["items"]
        assert items, plural
        for item in items:
            name = item["metadata"]["name"]
            response = await api.client.put(f"/api/v1/{plural}/{name}", json=item, headers=api.admin)
            assert response.status_code == 200, response.text
            assert response.headers["mcpctl-result"] == "unchanged", (plural, name)


async def test_post_creates_once_then_409(api: Api) -> None:
    body = {"kind": "Project", "metadata": {"name": "p2"}, "spec": {}}
    assert (await api.client.post("/api/v1/projects", json=body, headers=api.admin)).status_code == 201
    assert_error(
        await api.client.post("/api/v1/projects", json=body, headers=api.admin), 409, "already_exists"
    )


async def test_dry_run_validates_and_changes_nothing(api: Api) -> None:
    body = {"metadata": {"name": "p3"}, "spec": {}}
    response = await api.client.put(
        "/api/v1/projects/p3", params={"dryRun": "true"}, json=body, headers=api.admin
    )
    assert response.status_code == 201 and response.headers["mcpctl-result"] == "created"
    assert_error(await api.client.get("/api/v1/projects/p3", headers=api.admin), 404, "not_found")
    bad = {"metadata": {"name": "p3"}, "spec": {"servers": ["missing"]}}
    assert_error(
        await api.client.put("/api/v1/projects/p3", params={"dryRun": "true"}, json=bad, headers=api.admin),
        400,
        "invalid",
    )


async def test_patch_merges_into_the_spec_and_validates_the_result(api: Api) -> None:
    await seed(api)
    response = await api.client.patch(
        "/api/v1/servers/time",
        json={"spec": {"replicas": 3}, "metadata": {"labels": {"tier": "a"}}},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["spec"]["replicas"] == 3 and body["spec"]["command"] == "mcp-server-time"
    assert body["metadata"]["labels"] == {"team": "obs", "tier": "a"}
    removed = await api.client.patch(
        "/api/v1/servers/time", json={"metadata": {"labels": {"team": None}}}, headers=api.admin
    )
    assert removed.json()["metadata"]["labels"] == {"tier": "a"}
    assert_error(
        await api.client.patch("/api/v1/servers/time", json={"spec": {"replicas": 0}}, headers=api.admin),
        400,
        "invalid",
    )
    assert_error(
        await api.client.patch("/api/v1/servers/nope", json={"spec": {}}, headers=api.admin), 404, "not_found"
    )


async def test_server_in_use_needs_force_which_detaches_it(api: Api) -> None:
    await seed(api)
    assert_error(await api.client.delete("/api/v1/servers/time", headers=api.admin), 409, "conflict")
    response = await api.client.delete("/api/v1/servers/time", params={"force": "true"}, headers=api.admin)
    assert response.status_code == 204
    project = (await api.client.get("/api/v1/projects/monitoring", headers=api.admin)).json()
    assert project["spec"]["servers"] == ["docs"]
    assert_error(await api.client.get("/api/v1/servers/time", headers=api.admin), 404, "not_found")


async def test_secret_values_are_masked_unless_asked_and_encrypted_at_rest(api: Api) -> None:
    await seed(api)
    masked = (await api.client.get("/api/v1/secrets/grafana", headers=api.admin)).json()
    assert masked["spec"]["data"] == {"TOKEN": "********"} and masked["status"]["keys"] == ["TOKEN"]
    shown = await api.client.get("/api/v1/secrets/grafana", params={"showValues": "true"}, headers=api.admin)
    assert shown.json()["spec"]["data"] == {"TOKEN": "glsa_xxx"}
    import sqlalchemy as sa

    from mcpctl.storage import tables

    async with api.app.state.mcpd.db.read() as session:
        raw = (await session.execute(sa.select(tables.Secret.data_encrypted))).scalar()
    assert raw is not None and b"glsa_xxx" not in raw
    # a masked value for a new key has nothing to keep
    assert_error(
        await api.put("secrets", "grafana", {"data": {"TOKEN": "********", "NEW": "********"}}),
        400,
        "invalid",
    )


async def test_a_referenced_secret_or_key_cannot_vanish_silently(api: Api) -> None:
    await seed(api)
    assert_error(await api.client.delete("/api/v1/secrets/grafana", headers=api.admin), 409, "conflict")
    assert_error(await api.put("secrets", "grafana", {"data": {"OTHER": "x"}}), 409, "conflict")


@pytest.mark.parametrize(
    ("plural", "spec"),
    [
        ("projects", {"servers": ["missing"]}),
        ("groups", {"members": ["nobody@example.com"]}),
        ("servers", {**STDIO, "env": {"T": {"secretRef": {"name": "missing", "key": "K"}}}}),
        (
            "servers",
            {
                "transport": "http",
                "url": "https://x",
                "headers": {"A": {"secretRef": {"name": "grafana", "key": "NOPE"}}},
            },
        ),
    ],
)
async def test_unknown_references_are_400_and_write_nothing(
    api: Api, plural: str, spec: dict[str, Any]
) -> None:
    await api.put("secrets", "grafana", {"data": {"TOKEN": "t"}})
    assert_error(await api.put(plural, "thing", spec), 400, "invalid")
    assert_error(await api.client.get(f"/api/v1/{plural}/thing", headers=api.admin), 404, "not_found")


async def test_deleting_a_user_removes_it_from_groups(api: Api) -> None:
    await seed(api)
    await api.put("groups", "devs", {"members": ["bob@example.com"]})
    assert (await api.client.delete("/api/v1/users/bob", headers=api.admin)).status_code == 204
    group = (await api.client.get("/api/v1/groups/devs", headers=api.admin)).json()
    assert group["spec"]["members"] == []


async def test_user_password_is_write_only_and_hashed_with_argon2id(api: Api) -> None:
    await seed(api)
    body = (await api.client.get("/api/v1/users/bob", headers=api.admin)).json()
    assert "password" not in body["spec"] and body["status"]["hasPassword"] is True
    import sqlalchemy as sa

    from mcpctl.storage import tables

    async with api.app.state.mcpd.db.read() as session:
        stored = (
            await session.execute(sa.select(tables.User.password_hash).where(tables.User.name == "bob"))
        ).scalar()
    assert stored is not None and stored.startswith("$argon2id$")
    # apply with the same password is unchanged; a new one is configured and works
    same = await api.put("users", "bob", {"email": "bob@example.com", "password": "s3cret-Pass"})
    assert same.headers["mcpctl-result"] == "unchanged"
    new = await api.put("users", "bob", {"email": "bob@example.com", "password": "another-Pass"})
    assert new.headers["mcpctl-result"] == "configured"
    await api.login("bob@example.com", "another-Pass")


async def test_two_users_cannot_share_an_email(api: Api) -> None:
    await seed(api)
    assert_error(await api.put("users", "bob2", {"email": "BOB@example.com"}), 409, "already_exists")


async def test_rbac_definition_normalizes_and_rejects_bad_bindings(api: Api) -> None:
    ok = await api.put(
        "rbac",
        "r1",
        {
            "subjects": ["User:Bob@Example.com", "Group:devs"],
            "roleBindings": [
                {"role": "run", "action": "logs"},
                {"role": "view", "resource": "servers", "name": "time"},
            ],
        },
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["spec"]["subjects"] == ["User:bob@example.com", "Group:devs"]
    for bad in (
        {"role": "admin", "resource": "servers"},
        {"role": "view", "resource": "widgets"},
        {"role": "view"},
        {"action": "logs", "resource": "servers"},
        {"action": "fly"},
    ):
        assert_error(
            await api.put("rbac", "r2", {"subjects": ["Group:devs"], "roleBindings": [bad]}), 400, "invalid"
        )
    assert_error(await api.put("rbac", "r2", {"subjects": ["Robot:x"], "roleBindings": []}), 400, "invalid")
    # a definition whose subjects were all deleted still reads back and applies (it grants nothing)
    assert (await api.put("rbac", "r2", {"subjects": [], "roleBindings": []})).status_code == 201
