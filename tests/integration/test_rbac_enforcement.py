"""Authorization through the one policy module: 404 before 403, filtered lists, audit of denials."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Api, assert_error

pytestmark = pytest.mark.anyio

VIEW_PROJECTS = {"role": "view", "resource": "projects"}


async def _seed(api: Api) -> None:
    await api.put("servers", "time", {"transport": "stdio", "command": "mcp-server-time"})
    await api.put("servers", "fetch", {"transport": "stdio", "command": "mcp-server-fetch"})
    await api.put("projects", "monitoring", {"servers": ["time"]})


async def test_view_only_user_lists_projects_but_cannot_create_one(api: Api) -> None:
    await _seed(api)
    viewer = await api.user_with("viewer", VIEW_PROJECTS)
    listed = await api.client.get("/api/v1/projects", headers=viewer)
    assert listed.status_code == 200 and [i["metadata"]["name"] for i in listed.json()["items"]] == [
        "monitoring"
    ]
    response = await api.client.post(
        "/api/v1/projects", json={"metadata": {"name": "new"}, "spec": {}}, headers=viewer
    )
    assert_error(response, 403, "forbidden")
    assert_error(await api.client.get("/api/v1/projects/new", headers=api.admin), 404, "not_found")


async def test_a_server_the_user_may_not_view_is_404_not_403(api: Api) -> None:
    await _seed(api)
    viewer = await api.user_with("viewer", VIEW_PROJECTS)
    assert_error(await api.client.get("/api/v1/servers/time", headers=viewer), 404, "not_found")
    assert_error(await api.client.get("/api/v1/servers/does-not-exist", headers=viewer), 404, "not_found")
    assert_error(await api.client.delete("/api/v1/servers/time", headers=viewer), 404, "not_found")
    assert_error(
        await api.client.patch("/api/v1/servers/time", json={"spec": {}}, headers=viewer), 404, "not_found"
    )
    # the collection itself is forbidden, not hidden
    assert_error(await api.client.get("/api/v1/servers", headers=viewer), 403, "forbidden")


async def test_visible_but_not_editable_is_403(api: Api) -> None:
    await _seed(api)
    viewer = await api.user_with("viewer", VIEW_PROJECTS)
    response = await api.client.patch(
        "/api/v1/projects/monitoring", json={"spec": {"toolPrefixMode": "never"}}, headers=viewer
    )
    assert_error(response, 403, "forbidden")
    assert_error(await api.client.delete("/api/v1/projects/monitoring", headers=viewer), 403, "forbidden")


async def test_name_narrowed_binding_filters_lists_and_hides_the_rest(api: Api) -> None:
    await _seed(api)
    user = await api.user_with("narrow", {"role": "view", "resource": "servers", "name": "time"})
    listed = await api.client.get("/api/v1/servers", headers=user)
    assert [i["metadata"]["name"] for i in listed.json()["items"]] == ["time"]
    assert (await api.client.get("/api/v1/servers/time", headers=user)).status_code == 200
    assert_error(await api.client.get("/api/v1/servers/fetch", headers=user), 404, "not_found")


async def test_edit_implies_view_but_not_create_or_delete(api: Api) -> None:
    await _seed(api)
    editor = await api.user_with("editor", {"role": "edit", "resource": "servers"})
    assert (await api.client.get("/api/v1/servers/time", headers=editor)).status_code == 200
    patched = await api.client.patch("/api/v1/servers/time", json={"spec": {"replicas": 2}}, headers=editor)
    assert patched.status_code == 200
    assert_error(await api.client.delete("/api/v1/servers/time", headers=editor), 403, "forbidden")
    body = {"metadata": {"name": "x"}, "spec": {"transport": "stdio", "command": "x"}}
    assert_error(await api.client.post("/api/v1/servers", json=body, headers=editor), 403, "forbidden")


async def test_group_bindings_apply_to_members(api: Api) -> None:
    await _seed(api)
    member = await api.user_with("member")
    assert_error(await api.client.get("/api/v1/projects", headers=member), 403, "forbidden")
    await api.put("groups", "devs", {"members": ["member@example.com"]})
    await api.put("rbac", "devs-view", {"subjects": ["Group:devs"], "roleBindings": [VIEW_PROJECTS]})
    assert (await api.client.get("/api/v1/projects", headers=member)).status_code == 200


async def test_audit_needs_the_audit_operation(api: Api) -> None:
    viewer = await api.user_with("viewer", VIEW_PROJECTS)
    assert_error(await api.client.get("/api/v1/audit/events", headers=viewer), 403, "forbidden")
    auditor = await api.user_with("auditor", {"role": "run", "action": "audit"})
    assert (await api.client.get("/api/v1/audit/events", headers=auditor)).status_code == 200


async def test_show_values_needs_edit_on_secrets(api: Api) -> None:
    await api.put("secrets", "s", {"data": {"K": "v"}})
    viewer = await api.user_with("viewer", {"role": "view", "resource": "secrets"})
    masked = await api.client.get("/api/v1/secrets/s", headers=viewer)
    assert masked.json()["spec"]["data"] == {"K": "********"}
    assert_error(
        await api.client.get("/api/v1/secrets/s", params={"showValues": "true"}, headers=viewer),
        403,
        "forbidden",
    )


async def test_denials_are_audited_as_rbac_denied(api: Api) -> None:
    viewer = await api.user_with("viewer", VIEW_PROJECTS)
    await api.client.post("/api/v1/projects", json={"metadata": {"name": "new"}, "spec": {}}, headers=viewer)
    events = (
        await api.client.get("/api/v1/audit/events", params={"kind": "rbac_denied"}, headers=api.admin)
    ).json()
    assert [e["spec"]["user"] for e in events["items"]] == ["viewer@example.com"]
    assert events["items"][0]["spec"]["outcome"] == "denied"


async def test_changes_are_audited_as_resource_changed(api: Api) -> None:
    await _seed(api)
    await api.client.delete("/api/v1/servers/fetch", headers=api.admin)
    events = (
        await api.client.get(
            "/api/v1/audit/events", params={"kind": "resource_changed", "since": "1h"}, headers=api.admin
        )
    ).json()["items"]
    seen = [(e["spec"]["target"], e["spec"]["verb"]) for e in events]
    assert seen[0] == ("servers/fetch", "deleted")
    assert ("projects/monitoring", "created") in seen
    limited = await api.client.get("/api/v1/audit/events", params={"limit": 1}, headers=api.admin)
    assert len(limited.json()["items"]) == 1
    assert_error(
        await api.client.get("/api/v1/audit/events", params={"since": "yesterday"}, headers=api.admin),
        400,
        "invalid",
    )
    assert_error(
        await api.client.get("/api/v1/audit/events", params={"kind": "nope"}, headers=api.admin),
        400,
        "invalid",
    )
