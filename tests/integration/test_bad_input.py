"""Bad input gets a 4xx in the one error shape and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, assert_error

pytestmark = pytest.mark.anyio


async def _count_projects(api: Api) -> int:
    return len((await api.client.get("/api/v1/projects", headers=api.admin)).json()["items"])


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"name": "UPPER"}, "spec": {}},
        {"metadata": {"name": "a" * 64}, "spec": {}},
        {"metadata": {"name": "-bad"}, "spec": {}},
        {"metadata": {"name": "ok"}, "spec": {"unknownField": 1}},
        {"metadata": {"name": "ok"}, "spec": {"servers": "time"}},
        {"metadata": {"name": "ok"}, "spec": {"toolPrefixMode": "sometimes"}},
        {"metadata": {"name": "ok"}, "spec": {"toolNameSeparator": "/"}},
        {"metadata": {"name": "ok"}, "spec": {"toolNameSeparator": "."}},
        {"metadata": {"name": "ok"}, "spec": {"toolNameSeparator": "x"}},
        {"metadata": {"name": "ok", "labels": {"bad key!": "x"}}, "spec": {}},
        {"metadata": {"name": "ok", "labels": {"k": "bad value!"}}, "spec": {}},
        {"metadata": {"name": "ok"}, "spec": {}, "extra": True},
        {"kind": "Server", "metadata": {"name": "ok"}, "spec": {}},
        {"metadata": {"name": "ok"}},
        {"spec": {}},
        [],
        "string",
    ],
)
async def test_malformed_bodies_are_400_invalid(api: Api, body: Any) -> None:
    assert_error(await api.client.post("/api/v1/projects", json=body, headers=api.admin), 400, "invalid")
    assert await _count_projects(api) == 0


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/projects",
        content=b'{"metadata": {',
        headers={**api.admin, "content-type": "application/json"},
    )
    assert_error(response, 400, "invalid")


async def test_name_in_url_and_body_must_agree(api: Api) -> None:
    response = await api.client.put(
        "/api/v1/projects/a", json={"metadata": {"name": "b"}, "spec": {}}, headers=api.admin
    )
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize(
    "spec",
    [
        {"transport": "stdio"},
        {"transport": "http"},
        {"transport": "http", "url": "ftp://x"},
        {"transport": "carrier-pigeon", "command": "x"},
        {"transport": "stdio", "command": "x", "url": "https://x"},
        {"transport": "http", "url": "https://x", "command": "x"},
        {"transport": "http", "url": "https://x", "replicas": 2},
        {"transport": "stdio", "command": "x", "replicas": 0},
        {"transport": "stdio", "command": "x", "replicas": "2"},
        {"transport": "stdio", "command": "x", "env": {"1BAD": "v"}},
        {"transport": "stdio", "command": "x", "env": {"K": {"secretRef": {"name": "s"}}}},
        {"transport": "stdio", "command": "x", "healthCheck": {"failureThreshold": 0}},
        {"transport": "stdio", "command": "x" * 5000},
    ],
)
async def test_bad_server_specs_are_400(api: Api, spec: dict[str, Any]) -> None:
    assert_error(await api.put("servers", "s", spec), 400, "invalid")


async def test_bad_name_in_path_is_400(api: Api) -> None:
    assert_error(await api.client.get("/api/v1/projects/" + "x" * 70, headers=api.admin), 400, "invalid")


async def test_oversized_body_is_413(api: Api) -> None:
    body = {"metadata": {"name": "big"}, "spec": {"description": "x" * 2_000_000}}
    assert_error(
        await api.client.post("/api/v1/projects", json=body, headers=api.admin), 413, "payload_too_large"
    )


async def test_unknown_route_and_method_use_the_error_shape(api: Api) -> None:
    assert_error(await api.client.get("/api/v1/widgets", headers=api.admin), 404, "not_found")
    assert_error(
        await api.client.request("PATCH", "/api/v1/projects", headers=api.admin), 405, "method_not_allowed"
    )


async def test_weak_password_is_400_and_creates_no_user(api: Api) -> None:
    assert_error(
        await api.put("users", "weak", {"email": "weak@example.com", "password": "short"}), 400, "invalid"
    )
    assert_error(await api.client.get("/api/v1/users/weak", headers=api.admin), 404, "not_found")


async def test_validation_errors_never_echo_secret_input(api: Api) -> None:
    response = await api.put("users", "x", {"email": "not-an-email", "password": "TopSecretValue123"})
    assert_error(response, 400, "invalid")
    assert "TopSecretValue123" not in response.text


async def test_nul_characters_are_400_on_every_backend(api: Api) -> None:
    body = {"metadata": {"name": "nul"}, "spec": {"description": "a\x00b"}}
    assert_error(await api.client.post("/api/v1/projects", json=body, headers=api.admin), 400, "invalid")
    response = await api.client.post(
        "/api/v1/auth/login", json={"email": "a\x00@x.io", "password": "whatever1"}
    )
    assert_error(response, 400, "invalid")
    assert_error(
        await api.client.get("/api/v1/audit/events", params={"user": "a\x00b"}, headers=api.admin),
        400,
        "invalid",
    )


async def test_out_of_range_audit_times_are_400(api: Api) -> None:
    for params in ({"since": "9999-12-31T23:00:00-05:00"}, {"until": "0001-01-01T00:00:00+05:00"}):
        assert_error(
            await api.client.get("/api/v1/audit/events", params=params, headers=api.admin), 400, "invalid"
        )


async def test_an_oversized_streamed_body_is_413(api: Api) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"metadata": {"name": "big"}, "spec": {"description": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"}}'

    response = await api.client.post(
        "/api/v1/projects", content=chunks(), headers={**api.admin, "content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
