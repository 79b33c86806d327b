"""Each kind's six routes in one lifecycle: POST, GET, list, PUT (apply), PATCH, DELETE."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, assert_error

pytestmark = pytest.mark.anyio

# plural → (spec to create, merge patch, field that the patch changes, expected value after it)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str, Any]] = {
    "users": (
        {"email": "dana@example.com", "password": "dana-password"},
        {"displayName": "Dana"},
        "displayName",
        "Dana",
    ),
    "groups": ({"members": []}, {"members": ["admin@example.com"]}, "members", ["admin@example.com"]),
    "rbac": (
        {"subjects": ["Group:devs"], "roleBindings": []},
        {"roleBindings": [{"role": "run", "action": "logs"}]},
        "roleBindings",
        [{"role": "run", "action": "logs"}],
    ),
    "projects": ({"servers": []}, {"toolPrefixMode": "never"}, "toolPrefixMode", "never"),
    "servers": (
        {"transport": "http", "url": "https://x.example.com/mcp"},
        {"url": "https://y.example.com/mcp"},
        "url",
        "https://y.example.com/mcp",
    ),
    "secrets": ({"data": {"A": "1"}}, {"data": {"B": "2"}}, "data", {"A": "********", "B": "********"}),
    "proxymodels": (
        {"stages": [{"type": "paginate", "config": {"pageBytes": 2048}}]},
        {"stages": [{"type": "gate"}]},
        "stages",
        [{"type": "gate", "config": {}}],
    ),
}


@pytest.mark.parametrize("plural", sorted(CASES))
async def test_a_kind_lives_through_all_its_routes(api: Api, plural: str) -> None:
    spec, patch, field, expected = CASES[plural]
    name = "thing"
    base = f"/api/v1/{plural}"
    created = await api.client.post(
        base, json={"metadata": {"name": name, "labels": {"x": "1"}}, "spec": spec}, headers=api.admin
    )
    assert created.status_code == 201, created.text
    obj = created.json()
    assert obj["metadata"]["name"] == name and obj["metadata"]["labels"] == {"x": "1"}

    got = await api.client.get(f"{base}/{name}", headers=api.admin)
    assert got.status_code == 200 and got.json()["metadata"]["id"] == obj["metadata"]["id"]

    listed = await api.client.get(base, params={"labelSelector": "x=1"}, headers=api.admin)
    assert [i["metadata"]["name"] for i in listed.json()["items"]] == [name]

    applied = await api.client.put(f"{base}/{name}", json=got.json(), headers=api.admin)
    assert applied.status_code == 200 and applied.headers["mcpctl-result"] == "unchanged"

    patched = await api.client.patch(f"{base}/{name}", json={"spec": patch}, headers=api.admin)
    assert patched.status_code == 200, patched.text
    assert patched.json()["spec"][field] == expected
    assert patched.json()["metadata"]["updatedAt"] >= obj["metadata"]["updatedAt"]

    deleted = await api.client.delete(f"{base}/{name}", headers=api.admin)
    assert deleted.status_code == 204
    assert_error(await api.client.get(f"{base}/{name}", headers=api.admin), 404, "not_found")
    assert_error(await api.client.delete(f"{base}/{name}", headers=api.admin), 404, "not_found")


@pytest.mark.parametrize("plural", sorted(CASES))
async def test_every_route_of_a_kind_needs_authentication(api: Api, plural: str) -> None:
    base = f"/api/v1/{plural}"
    body = {"metadata": {"name": "x"}, "spec": CASES[plural][0]}
    for method, url, json in (
        ("GET", base, None),
        ("GET", f"{base}/x", None),
        ("POST", base, body),
        ("PUT", f"{base}/x", body),
        ("PATCH", f"{base}/x", {"spec": {}}),
        ("DELETE", f"{base}/x", None),
    ):
        assert_error(await api.client.request(method, url, json=json), 401, "unauthenticated")
