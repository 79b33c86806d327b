"""McpTokens through the API on both databases (DESIGN §4, docs/api.md "McpTokens"): mint, use,
introspect, the creator ceiling, limits, revoke/delete, token files, expiry, and the raw value
appearing nowhere but the create response."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from mcpctl.core import tokens
from mcpctl.storage import tables
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, assert_error, make_settings, running

pytestmark = pytest.mark.anyio

VIEW_PROJECTS = {"role": "view", "resource": "projects"}
EDIT_PROJECTS = {"role": "edit", "resource": "projects"}
CREATE_TOKENS = {"role": "create", "resource": "mcptokens"}
VIEW_TOKENS = {"role": "view", "resource": "mcptokens"}
P = "monitoring"


# --- helpers -----------------------------------------------------------------------------------------


async def seed(api: Api, *projects: str) -> None:
    assert (
        await api.put("servers", "time", {"transport": "stdio", "command": "mcp-server-time"})
    ).status_code == 201
    for name in projects or (P,):
        response = await api.put("projects", name, {"servers": ["time"]})
        assert response.status_code == 201, response.text


async def mint(
    api: Api, project: str = P, *, headers: dict[str, str] | None = None, via: str = "global", **body: Any
) -> httpx.Response:
    """POST /api/v1/mcptokens (via="global") or /api/v1/projects/{p}/mcptokens (via="project")."""
    body.setdefault("name", "agent")
    if via == "global":
        return await api.client.post(
            "/api/v1/mcptokens", json={"project": project, **body}, headers=headers or api.admin
        )
    return await api.client.post(
        f"/api/v1/projects/{project}/mcptokens", json=body, headers=headers or api.admin
    )


async def minted(api: Api, project: str = P, **kwargs: Any) -> dict[str, Any]:
    response = await mint(api, project, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def introspect(api: Api, token: str | None) -> dict[str, Any]:
    response = await api.client.get("/api/v1/mcptokens/introspect", headers=bearer(token) if token else {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def get_token(api: Api, token_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/mcptokens/{token_id}", headers=api.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def snapshot(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that a request wrote nothing."""
    async with api.app.state.mcpd.db.read() as session:
        return {
            table.name: sorted(
                (tuple(row) for row in (await session.execute(sa.select(table))).all()), key=repr
            )
            for table in tables.Base.metadata.sorted_tables
        }


async def expire(api: Api, token_id: str) -> None:
    """Move a token's expiry into the past (what time would do)."""
    async with api.app.state.mcpd.db.write() as session:
        await session.execute(
            sa.update(tables.McpToken)
            .where(tables.McpToken.id == token_id)
            .values(expires_at=tables.utcnow() - timedelta(seconds=1))
        )


async def definitions(api: Api) -> dict[str, list[str]]:
    """RbacDefinition name → its subjects."""
    async with api.app.state.mcpd.db.read() as session:
        rows = (await session.execute(sa.select(tables.RbacDefinition))).scalars().all()
        return {d.name: [s.subject for s in d.subject_rows] for d in rows}


async def audit_events(api: Api, kind: str) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/audit/events", params={"kind": kind}, headers=api.admin)
    assert response.status_code == 200, response.text
    return [item["spec"] for item in response.json()["items"]]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def canon(bindings: list[dict[str, str]]) -> list[str]:
    """Bindings as a sorted list of canonical JSON strings (order-insensitive comparison)."""
    return sorted(json.dumps(b, sort_keys=True) for b in bindings)


def flip_last(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


# --- mint ----------------------------------------------------------------------------------------------


async def test_minting_answers_201_with_the_token_its_client_config_and_the_object(api: Api) -> None:
    await seed(api)
    public = api.app.state.mcpd.settings.resolved_public_url
    for via, name in (("global", "agent"), ("project", "agent-2")):
        body = await minted(api, via=via, name=name, description="agent on the GPU box")
        token = body["token"]
        assert tokens.is_well_formed(token)
        assert body.get("tokenPath") is None
        obj = body["mcpToken"]
        assert obj["kind"] == "McpToken"
        assert obj["metadata"]["name"] == name and obj["metadata"]["project"] == P
        assert len(obj["metadata"]["id"]) == 32 and obj["metadata"]["createdAt"]
        assert obj["spec"] == {"rbac": "empty", "bindings": [], "description": "agent on the GPU box"}
        assert obj["status"] == {
            "status": "active",
            "prefix": tokens.display_prefix(token),
            "tokenSha": tokens.token_sha(token),
            "owner": ADMIN_EMAIL,
            "expiresAt": None,
            "revokedAt": None,
            "lastUsedAt": None,
            "rbacDefinition": None,
        }
        assert set(body["clientConfig"]) == {"claudeDesktop", "claudeCode", "vscode", "cursor", "http"}
        assert body["clientConfig"]["http"] == {
            "url": f"{public}/projects/{P}/mcp",
            "headers": {"Authorization": f"Bearer {token}"},
        }
        desktop = body["clientConfig"]["claudeDesktop"]["mcpServers"][f"mcpctl-{P}"]
        assert desktop["args"] == ["stdio", "--project", P]
        assert desktop["env"]["MCPCTL_TOKEN"] == token
        assert token not in json.dumps(obj)
    assert {e["tokenName"] for e in await audit_events(api, "token_created")} == {"agent", "agent-2"}


async def test_the_raw_token_appears_nowhere_but_the_create_response(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await seed(api)
    body = await minted(api, rbac="bind", bindings=[VIEW_PROJECTS, VIEW_TOKENS])
    token, obj = body["token"], body["mcpToken"]
    secret_part = token[len(tokens.PREFIX) :]
    sha, token_id = obj["status"]["tokenSha"], obj["metadata"]["id"]
    seen: list[str] = []

    async def call(method: str, url: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        response = await api.client.request(method, url, headers=headers, **kwargs)
        seen.append(f"{method} {url} {response.status_code} {response.headers} {response.text}")
        return response

    # use it: its project, its tokens, introspection, and a refused request
    assert (await call("GET", f"/api/v1/projects/{P}", bearer(token))).status_code == 200
    assert (await call("GET", f"/api/v1/projects/{P}/mcptokens", bearer(token))).status_code == 200
    assert (await call("GET", "/api/v1/mcptokens/introspect", bearer(token))).json()["ok"] is True
    assert (await call("GET", "/api/v1/servers", bearer(token))).status_code == 403
    # read it back every way
    for url in (
        f"/api/v1/mcptokens/{token_id}",
        f"/api/v1/projects/{P}/mcptokens/agent",
        "/api/v1/mcptokens",
        f"/api/v1/mcptokens?project={P}",
        f"/api/v1/projects/{P}/mcptokens",
        f"/api/v1/rbac/mcptoken-{P}-agent",
        "/api/v1/rbac",
    ):
        assert (await call("GET", url, api.admin)).status_code == 200
    assert (await call("POST", f"/api/v1/mcptokens/{token_id}/revoke", api.admin)).status_code == 200
    assert_error(await call("GET", f"/api/v1/projects/{P}", bearer(token)), 401, "unauthenticated")
    created = await call("GET", "/api/v1/audit/events", api.admin, params={"kind": "token_created"})
    events = created.json()["items"]
    assert [(e["spec"]["tokenName"], e["spec"]["tokenSha"], e["spec"]["project"]) for e in events] == [
        ("agent", sha, P)
    ]
    assert (await call("GET", "/api/v1/audit/events", api.admin, params={"limit": 1000})).status_code == 200
    for response_text in seen:
        assert secret_part not in response_text
    rows = await snapshot(api)
    assert secret_part not in repr(rows)
    assert any(sha in repr(r) for r in rows["mcp_tokens"])
    assert caplog.records, "the flow logged nothing at DEBUG: the leak check would prove nothing"
    assert secret_part not in caplog.text
    for record in caplog.records:
        assert secret_part not in record.getMessage()
        assert secret_part not in repr(record.args)
        assert secret_part not in (record.exc_text or "")


# --- introspect ----------------------------------------------------------------------------------------


async def test_introspect_describes_a_valid_token(api: Api) -> None:
    await seed(api)
    body = await minted(api, ttl="30d", bindings=[VIEW_PROJECTS])
    token = body["token"]
    answer = await introspect(api, token)
    stored = await get_token(api, body["mcpToken"]["metadata"]["id"])
    assert answer == {
        "ok": True,
        "tokenName": "agent",
        "tokenSha": tokens.token_sha(token),
        "project": P,
        "owner": ADMIN_EMAIL,
        "expiresAt": stored["status"]["expiresAt"],
        "bindings": [VIEW_PROJECTS],
        "reach": ["time"],
    }
    assert parse_time(answer["expiresAt"]) - tables.utcnow() > timedelta(days=29)


async def test_introspect_of_a_never_expiring_token_says_expires_at_null(api: Api) -> None:
    await seed(api)
    answer = await introspect(api, (await minted(api))["token"])
    assert answer["ok"] is True
    assert "expiresAt" in answer and answer["expiresAt"] is None


async def test_introspect_refuses_malformed_unknown_revoked_and_expired_tokens_with_a_reason(
    api: Api,
) -> None:
    await seed(api)
    good = (await minted(api, name="good"))["token"]
    revoked = await minted(api, name="revoked")
    expired = await minted(api, name="expired")
    assert (
        await api.client.post(
            f"/api/v1/mcptokens/{revoked['mcpToken']['metadata']['id']}/revoke", headers=api.admin
        )
    ).status_code == 200
    await expire(api, expired["mcpToken"]["metadata"]["id"])
    cases = {
        "malformed": [flip_last(good), "mcpctl_pat_short", good + "x", "mcpctl_pat_" + "!" * 49],
        "unknown": [tokens.generate()],
        "revoked": [revoked["token"]],
        "expired": [expired["token"]],
    }
    for reason, values in cases.items():
        for value in values:
            assert await introspect(api, value) == {"ok": False, "reason": reason}, value
    assert (await introspect(api, good))["ok"] is True


async def test_introspect_without_a_bearer_is_not_ok(api: Api) -> None:
    answer = await introspect(api, None)
    assert answer["ok"] is False
    assert answer["reason"] in ("malformed", "unknown", "revoked", "expired")
    assert set(answer) == {"ok", "reason"}
    empty = await api.client.get("/api/v1/mcptokens/introspect", headers={"Authorization": "Bearer "})
    assert empty.status_code == 200 and empty.json()["ok"] is False


# --- use -----------------------------------------------------------------------------------------------


async def test_an_empty_token_is_authenticated_but_has_no_rest_permissions(api: Api) -> None:
    await seed(api)
    body = await minted(api)
    headers = bearer(body["token"])
    # authenticated (never 401) …
    for url in (f"/api/v1/projects/{P}", f"/api/v1/projects/{P}/servers", f"/api/v1/projects/{P}/mcptokens"):
        response = await api.client.get(url, headers=headers)
        assert response.status_code != 401, url
        # … but holds no binding: its own project is invisible to it (§3: reads answer 404, not 403)
        assert_error(response, 404, "not_found")
    assert_error(await api.client.get("/api/v1/projects", headers=headers), 403, "forbidden")
    assert_error(await mint(api, headers=headers, via="project", name="child"), 404, "not_found")
    assert (await introspect(api, body["token"]))["ok"] is True
    assert (await get_token(api, body["mcpToken"]["metadata"]["id"]))["status"]["lastUsedAt"] is not None


async def test_a_view_projects_token_reads_its_own_project_and_nothing_outside_it(api: Api) -> None:
    # "mon" is a prefix of "monitoring": the scope must be the path segment, not a string prefix
    await seed(api, "mon", "monitoring")
    headers = bearer((await minted(api, "mon", bindings=[VIEW_PROJECTS]))["token"])
    project = await api.client.get("/api/v1/projects/mon", headers=headers)
    assert project.status_code == 200 and project.json()["metadata"]["name"] == "mon"
    servers = await api.client.get("/api/v1/projects/mon/servers", headers=headers)
    assert servers.status_code == 200 and servers.json()["kind"] == "List"
    for url in (
        "/api/v1/projects",
        "/api/v1/servers",
        "/api/v1/servers/time",
        "/api/v1/auth/me",
        "/api/v1/mcptokens",
        "/api/v1/rbac",
        "/api/v1/audit/events",
        "/api/v1/projects/monitoring",
        "/api/v1/projects/monitoring/servers",
        "/api/v1/projects/monitoring/mcptokens",
    ):
        assert_error(await api.client.get(url, headers=headers), 403, "forbidden")
    # inside its scope, its bindings still rule: view does not allow edit
    patched = await api.client.patch(
        "/api/v1/projects/mon", json={"spec": {"toolPrefixMode": "never"}}, headers=headers
    )
    assert_error(patched, 403, "forbidden")


async def test_bad_tokens_are_401_with_www_authenticate_and_write_nothing(api: Api) -> None:
    await seed(api)
    good = (await minted(api, name="good", bindings=[VIEW_PROJECTS]))["token"]
    revoked = await minted(api, name="revoked", bindings=[VIEW_PROJECTS])
    expired = await minted(api, name="expired", bindings=[VIEW_PROJECTS])
    assert (
        await api.client.post(
            f"/api/v1/mcptokens/{revoked['mcpToken']['metadata']['id']}/revoke", headers=api.admin
        )
    ).status_code == 200
    await expire(api, expired["mcpToken"]["metadata"]["id"])
    before = await snapshot(api)
    cases = {
        "malformed": flip_last(good),
        "unknown": tokens.generate(),
        "revoked": revoked["token"],
        "expired": expired["token"],
    }
    for reason, value in cases.items():
        for url in (f"/api/v1/projects/{P}", "/api/v1/projects", "/api/v1/mcptokens"):
            response = await api.client.get(url, headers=bearer(value))
            assert_error(response, 401, "unauthenticated")
            assert response.json()["error"]["details"]["reason"] == reason
        assert_error(await mint(api, headers=bearer(value), via="project", name="x"), 401, "unauthenticated")
    assert await snapshot(api) == before
    for refused in (revoked, expired):
        assert (await get_token(api, refused["mcpToken"]["metadata"]["id"]))["status"]["lastUsedAt"] is None


async def test_last_used_at_is_set_on_first_use_and_not_rewritten_within_a_minute(api: Api) -> None:
    await seed(api)
    body = await minted(api, bindings=[VIEW_PROJECTS])
    token_id = body["mcpToken"]["metadata"]["id"]
    assert (await get_token(api, token_id))["status"]["lastUsedAt"] is None
    started = tables.utcnow()
    assert (await api.client.get(f"/api/v1/projects/{P}", headers=bearer(body["token"]))).status_code == 200
    first = (await get_token(api, token_id))["status"]["lastUsedAt"]
    assert first is not None
    assert started - timedelta(seconds=1) <= parse_time(first) <= tables.utcnow()
    assert (await api.client.get(f"/api/v1/projects/{P}", headers=bearer(body["token"]))).status_code == 200
    assert (await introspect(api, body["token"]))["ok"] is True
    assert (await get_token(api, token_id))["status"]["lastUsedAt"] == first


# --- rbac modes and the creator ceiling ------------------------------------------------------------------


async def test_rbac_empty_creates_no_rbac_definition(api: Api) -> None:
    await seed(api)
    before = await definitions(api)
    for name, extra in (("a", {}), ("b", {"rbac": "empty"}), ("c", {"rbac": "bind", "bindings": []})):
        body = await minted(api, name=name, **extra)
        assert body["mcpToken"]["spec"]["bindings"] == []
        assert body["mcpToken"]["status"]["rbacDefinition"] is None
        assert (await introspect(api, body["token"]))["bindings"] == []
    assert await definitions(api) == before


async def test_rbac_clone_snapshots_the_creators_current_bindings(api: Api) -> None:
    await seed(api)
    creator_bindings = [VIEW_PROJECTS, CREATE_TOKENS, {"role": "view", "resource": "servers", "name": "time"}]
    user = await api.user_with("carol", *creator_bindings)
    body = await minted(api, headers=user, rbac="clone")
    token, obj = body["token"], body["mcpToken"]
    sha = tokens.token_sha(token)
    assert obj["spec"]["rbac"] == "clone"
    assert canon(obj["spec"]["bindings"]) == canon(creator_bindings)
    assert obj["status"]["owner"] == "carol@example.com"
    assert obj["status"]["rbacDefinition"] == f"mcptoken-{P}-agent"
    definition = (await api.client.get(f"/api/v1/rbac/mcptoken-{P}-agent", headers=api.admin)).json()
    assert definition["spec"]["subjects"] == [f"McpToken:{sha}"]
    assert canon(definition["spec"]["roleBindings"]) == canon(creator_bindings)
    # a snapshot: widening the creator later does not widen the token
    wider = [*creator_bindings, EDIT_PROJECTS]
    assert (
        await api.put("rbac", "carol-rbac", {"subjects": ["User:carol@example.com"], "roleBindings": wider})
    ).status_code == 200
    assert canon((await introspect(api, token))["bindings"]) == canon(creator_bindings)


async def test_rbac_bind_uses_exactly_the_given_bindings(api: Api) -> None:
    await seed(api)
    # giving bindings implies rbac bind; duplicates collapse
    body = await minted(api, bindings=[VIEW_PROJECTS, {"action": "logs"}, VIEW_PROJECTS])
    obj, sha = body["mcpToken"], body["mcpToken"]["status"]["tokenSha"]
    assert obj["spec"]["rbac"] == "bind"
    assert obj["spec"]["bindings"] == [VIEW_PROJECTS, {"role": "run", "action": "logs"}]
    assert (await definitions(api))[f"mcptoken-{P}-agent"] == [f"McpToken:{sha}"]
    answer = await introspect(api, body["token"])
    assert canon(answer["bindings"]) == canon([VIEW_PROJECTS, {"role": "run", "action": "logs"}])


async def test_bindings_cannot_be_combined_with_rbac_clone_or_empty(api: Api) -> None:
    await seed(api)
    for rbac in ("clone", "empty"):
        assert_error(await mint(api, rbac=rbac, bindings=[VIEW_PROJECTS]), 400, "invalid")
    assert (await api.client.get("/api/v1/mcptokens", headers=api.admin)).json()["items"] == []


async def test_a_bad_binding_or_rbac_mode_is_400(api: Api) -> None:
    await seed(api)
    bad: list[dict[str, Any]] = [
        {"bindings": [{"role": "fly", "resource": "projects"}]},
        {"bindings": [{"role": "view", "resource": "spaceships"}]},
        {"bindings": [{"role": "view"}]},
        {"bindings": [{"resource": "projects"}]},
        {"bindings": [{"role": "view", "resource": "projects", "action": "logs"}]},
        {"bindings": [{"action": "fly"}]},
        {"bindings": [{"role": "view", "resource": "projects", "name": "Not_A_Name"}]},
        {"bindings": [{"role": "view", "resource": "projects", "name": ""}]},
        {"bindings": [{"role": "view", "resource": "projects", "colour": "red"}]},
        {"bindings": ["role:view,resource:projects"]},
        {"rbac": "admin"},
        {"rbac": "bind", "bindings": [VIEW_PROJECTS, {"role": "edit", "resource": "nope"}]},
    ]
    for extra in bad:
        assert_error(await mint(api, **extra), 400, "invalid")
    assert (await api.client.get("/api/v1/mcptokens", headers=api.admin)).json()["items"] == []


async def test_the_creator_ceiling_refuses_a_binding_the_creator_does_not_hold_and_creates_nothing(
    api: Api,
) -> None:
    await seed(api)
    user = await api.user_with("vic", VIEW_PROJECTS, CREATE_TOKENS)
    before = await snapshot(api)
    for requested in ([EDIT_PROJECTS], [VIEW_PROJECTS, EDIT_PROJECTS], [{"role": "view", "resource": "*"}]):
        response = await mint(api, headers=user, bindings=requested)
        assert_error(response, 403, "forbidden")
        named = response.json()["error"]["details"]["binding"]
        assert named == (
            "role:edit,resource:projects" if EDIT_PROJECTS in requested else "role:view,resource:*"
        )
        assert named in response.json()["error"]["message"]
    after = await snapshot(api)
    assert after["mcp_tokens"] == before["mcp_tokens"] == []
    assert after["rbac_definitions"] == before["rbac_definitions"]
    # within the ceiling it works, including a narrower binding
    body = await minted(
        api, headers=user, bindings=[VIEW_PROJECTS, {"role": "view", "resource": "projects", "name": P}]
    )
    assert body["mcpToken"]["spec"]["rbac"] == "bind"


async def test_a_token_cannot_mint_beyond_itself(api: Api) -> None:
    await seed(api, P, "other")
    parent = await minted(api, name="parent", bindings=[CREATE_TOKENS, VIEW_PROJECTS])
    headers = bearer(parent["token"])
    refused = await mint(api, headers=headers, via="project", name="child", bindings=[EDIT_PROJECTS])
    assert_error(refused, 403, "forbidden")
    assert refused.json()["error"]["details"]["binding"] == "role:edit,resource:projects"
    assert_error(
        await mint(api, headers=headers, via="project", name="child", rbac="clone", bindings=[EDIT_PROJECTS]),
        400,
        "invalid",
    )
    # out of its scope: the global route and another project's route
    assert_error(
        await mint(api, headers=headers, via="global", name="child", bindings=[VIEW_PROJECTS]),
        403,
        "forbidden",
    )
    assert_error(await mint(api, "other", headers=headers, via="project", name="child"), 403, "forbidden")
    listed = (await api.client.get("/api/v1/mcptokens", headers=api.admin)).json()["items"]
    assert [i["metadata"]["name"] for i in listed] == ["parent"]
    # within its bindings it works; the child belongs to the parent's owner and project
    child = await minted(api, headers=headers, via="project", name="child", bindings=[VIEW_PROJECTS])
    assert child["mcpToken"]["metadata"]["project"] == P
    assert child["mcpToken"]["status"]["owner"] == ADMIN_EMAIL
    clone = await minted(api, headers=headers, via="project", name="clone", rbac="clone")
    assert canon(clone["mcpToken"]["spec"]["bindings"]) == canon([CREATE_TOKENS, VIEW_PROJECTS])
    assert (await api.client.get(f"/api/v1/projects/{P}", headers=bearer(child["token"]))).status_code == 200


# --- errors on mint --------------------------------------------------------------------------------------


async def test_minting_in_an_unknown_project_is_404(api: Api) -> None:
    await seed(api)
    assert_error(await mint(api, "nope"), 404, "not_found")
    assert_error(await mint(api, "nope", via="project"), 404, "not_found")


async def test_minting_in_a_project_the_creator_cannot_view_is_404(api: Api) -> None:
    await seed(api, P, "other")
    user = await api.user_with(
        "olga", {"role": "view", "resource": "projects", "name": "other"}, CREATE_TOKENS
    )
    assert_error(await mint(api, headers=user), 404, "not_found")
    assert_error(await mint(api, headers=user, via="project"), 404, "not_found")
    assert (await mint(api, "other", headers=user)).status_code == 201


async def test_minting_without_create_on_mcptokens_is_403(api: Api) -> None:
    await seed(api)
    user = await api.user_with(
        "vera", VIEW_PROJECTS, VIEW_TOKENS, {"role": "create", "resource": "mcptokens", "name": "other"}
    )
    assert_error(await mint(api, headers=user), 403, "forbidden")
    assert_error(await mint(api, headers=user, via="project"), 403, "forbidden")
    assert (await mint(api, headers=user, name="other")).status_code == 201


async def test_a_duplicate_active_name_is_409_and_revoking_frees_it(api: Api) -> None:
    await seed(api, P, "other")
    first = await minted(api)
    assert_error(await mint(api), 409, "already_exists")
    assert_error(await mint(api, via="project"), 409, "already_exists")
    assert (await mint(api, "other")).status_code == 201  # names are per project
    first_id = first["mcpToken"]["metadata"]["id"]
    assert (
        await api.client.post(f"/api/v1/mcptokens/{first_id}/revoke", headers=api.admin)
    ).status_code == 200
    second = await minted(api)
    assert second["token"] != first["token"]
    by_name = (await api.client.get(f"/api/v1/projects/{P}/mcptokens/agent", headers=api.admin)).json()
    assert by_name["metadata"]["id"] == second["mcpToken"]["metadata"]["id"]
    assert (await get_token(api, first_id))["status"]["status"] == "revoked"


async def test_an_expired_tokens_name_is_free_again(api: Api) -> None:
    await seed(api)
    first = await minted(api, ttl="1h")
    await expire(api, first["mcpToken"]["metadata"]["id"])
    assert (await get_token(api, first["mcpToken"]["metadata"]["id"]))["status"]["status"] == "expired"
    second = await minted(api)
    by_name = (await api.client.get(f"/api/v1/projects/{P}/mcptokens/agent", headers=api.admin)).json()
    assert by_name["metadata"]["id"] == second["mcpToken"]["metadata"]["id"]
    assert by_name["status"]["status"] == "active"
    assert_error(await mint(api), 409, "already_exists")


async def test_max_tokens_per_project_caps_active_tokens(tmp_path: Path, database_url: str) -> None:
    async with running(make_settings(tmp_path, database_url, max_tokens_per_project=2)) as (app, client):
        api = Api(client=client, app=app, admin={})
        api.admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        await seed(api, P, "other")
        one = await minted(api, name="one")
        await minted(api, name="two")
        assert_error(await mint(api, name="three"), 403, "token_limit_exceeded")
        assert_error(await mint(api, name="three", via="project"), 403, "token_limit_exceeded")
        assert (await mint(api, "other", name="three")).status_code == 201  # per project
        assert (
            await api.client.post(
                f"/api/v1/mcptokens/{one['mcpToken']['metadata']['id']}/revoke", headers=api.admin
            )
        ).status_code == 200
        three = await minted(api, name="three")  # a revoked token does not count
        await expire(api, three["mcpToken"]["metadata"]["id"])
        await minted(api, name="four")  # nor does an expired one
        assert_error(await mint(api, name="five"), 403, "token_limit_exceeded")
        listed = (await api.client.get(f"/api/v1/mcptokens?project={P}", headers=api.admin)).json()["items"]
        assert sorted(i["metadata"]["name"] for i in listed) == ["four", "one", "three", "two"]
        # hitting a limit is not an RBAC denial
        denied = await api.client.get(
            "/api/v1/audit/events", params={"kind": "rbac_denied"}, headers=api.admin
        )
        assert denied.json()["items"] == []


async def test_mcptoken_max_ttl_is_the_default_and_the_cap(tmp_path: Path, database_url: str) -> None:
    async with running(make_settings(tmp_path, database_url, mcptoken_max_ttl="1d")) as (app, client):
        api = Api(client=client, app=app, admin={})
        api.admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        await seed(api)
        before = tables.utcnow()
        body = await minted(api, name="default")
        expires = parse_time(body["mcpToken"]["status"]["expiresAt"])
        assert (
            before + timedelta(days=1) - timedelta(seconds=5)
            <= expires
            <= tables.utcnow() + timedelta(days=1)
        )
        for ttl in ("never", "30d", "25h", "2w"):
            response = await mint(api, name="capped", ttl=ttl)
            assert_error(response, 400, "invalid")
            assert response.json()["error"]["details"]["maxTtlSeconds"] == 86400
        assert (await mint(api, name="equal", ttl="1d")).status_code == 201
        assert (await mint(api, name="shorter", ttl="12h")).status_code == 201


async def test_a_bad_or_past_ttl_is_400(api: Api) -> None:
    await seed(api)
    for ttl in ("soon", "2001-01-01", "2001-01-01T00:00:00Z", "0d", "-1d", "30x", "never-ever", "1.5h"):
        assert_error(await mint(api, ttl=ttl), 400, "invalid")
        assert_error(await mint(api, via="project", ttl=ttl), 400, "invalid")
    assert (await api.client.get("/api/v1/mcptokens", headers=api.admin)).json()["items"] == []


async def test_an_out_of_range_ttl_is_400_not_500(api: Api) -> None:
    await seed(api)
    for ttl in ("99999999d", "9999-12-31T23:00:00-05:00"):
        assert_error(await mint(api, ttl=ttl), 400, "invalid")


async def test_expires_at_reads_the_same_in_the_create_response_get_and_introspect(api: Api) -> None:
    await seed(api)
    body = await minted(api, ttl="2099-01-01T00:00:00+05:00")
    stored = await get_token(api, body["mcpToken"]["metadata"]["id"])
    assert stored["status"]["expiresAt"] == "2098-12-31T19:00:00Z"
    assert (await introspect(api, body["token"]))["expiresAt"] == "2098-12-31T19:00:00Z"
    assert body["mcpToken"]["status"]["expiresAt"] == stored["status"]["expiresAt"]


async def test_an_invalid_name_or_body_is_400(api: Api) -> None:
    await seed(api)
    for name in ("Bad_Name", "-agent", "agent-", "a" * 64, "", "a b", "../etc"):
        assert_error(await mint(api, name=name), 400, "invalid")
        assert_error(await mint(api, name=name, via="project"), 400, "invalid")
    assert_error(
        await api.client.post("/api/v1/mcptokens", json={"name": "agent"}, headers=api.admin), 400, "invalid"
    )
    assert_error(await mint(api, colour="red"), 400, "invalid")
    with_project = {"name": "agent", "project": P}  # on the project route the path names the project
    assert_error(
        await api.client.post(f"/api/v1/projects/{P}/mcptokens", json=with_project, headers=api.admin),
        400,
        "invalid",
    )
    assert_error(await mint(api, "Not_A_Project"), 400, "invalid")
    assert (await api.client.get("/api/v1/mcptokens", headers=api.admin)).json()["items"] == []


# --- read ------------------------------------------------------------------------------------------------


async def test_a_token_is_readable_by_id_and_by_project_and_name(api: Api) -> None:
    await seed(api)
    body = await minted(api, bindings=[VIEW_PROJECTS])
    token_id = body["mcpToken"]["metadata"]["id"]
    by_id = await get_token(api, token_id)
    by_name = (await api.client.get(f"/api/v1/projects/{P}/mcptokens/agent", headers=api.admin)).json()
    assert by_id == by_name
    assert by_id["metadata"] == body["mcpToken"]["metadata"]
    assert by_id["spec"] == body["mcpToken"]["spec"]
    assert by_id["status"]["rbacDefinition"] == f"mcptoken-{P}-agent"
    assert_error(await api.client.get(f"/api/v1/mcptokens/{'0' * 32}", headers=api.admin), 404, "not_found")
    assert_error(
        await api.client.get(f"/api/v1/projects/{P}/mcptokens/nope", headers=api.admin), 404, "not_found"
    )
    assert_error(
        await api.client.get("/api/v1/projects/nope/mcptokens/agent", headers=api.admin), 404, "not_found"
    )
    assert (await api.client.get("/api/v1/mcptokens/not-an-id", headers=api.admin)).status_code in (400, 404)
    assert_error(await api.client.get(f"/api/v1/mcptokens/{token_id}"), 401, "unauthenticated")


async def test_lists_show_all_tokens_or_one_projects_newest_first(api: Api) -> None:
    await seed(api, P, "other")
    for project, name in ((P, "a"), ("other", "b"), (P, "c")):
        await minted(api, project, name=name)

    async def names(url: str) -> list[tuple[str, str]]:
        response = await api.client.get(url, headers=api.admin)
        assert response.status_code == 200, response.text
        assert response.json()["kind"] == "List"
        return [(i["metadata"]["project"], i["metadata"]["name"]) for i in response.json()["items"]]

    assert await names("/api/v1/mcptokens") == [(P, "c"), ("other", "b"), (P, "a")]
    assert await names(f"/api/v1/mcptokens?project={P}") == [(P, "c"), (P, "a")]
    assert await names(f"/api/v1/projects/{P}/mcptokens") == [(P, "c"), (P, "a")]


async def test_listing_the_tokens_of_an_unknown_project_is_404(api: Api) -> None:
    await seed(api)
    for url in ("/api/v1/projects/nope/mcptokens", "/api/v1/mcptokens?project=nope"):
        assert_error(await api.client.get(url, headers=api.admin), 404, "not_found")


async def test_a_user_who_may_view_one_token_name_sees_only_that_token(api: Api) -> None:
    await seed(api)
    a = await minted(api, name="a")
    b = await minted(api, name="b")
    user = await api.user_with("nina", VIEW_PROJECTS, {"role": "view", "resource": "mcptokens", "name": "a"})
    for url in ("/api/v1/mcptokens", f"/api/v1/mcptokens?project={P}", f"/api/v1/projects/{P}/mcptokens"):
        listed = (await api.client.get(url, headers=user)).json()["items"]
        assert [i["metadata"]["name"] for i in listed] == ["a"], url
    assert (
        await api.client.get(f"/api/v1/mcptokens/{a['mcpToken']['metadata']['id']}", headers=user)
    ).status_code == 200
    assert (await api.client.get(f"/api/v1/projects/{P}/mcptokens/a", headers=user)).status_code == 200
    assert_error(
        await api.client.get(f"/api/v1/mcptokens/{b['mcpToken']['metadata']['id']}", headers=user),
        404,
        "not_found",
    )
    assert_error(await api.client.get(f"/api/v1/projects/{P}/mcptokens/b", headers=user), 404, "not_found")
    # nor may it revoke or delete the one it sees
    assert_error(
        await api.client.post(f"/api/v1/projects/{P}/mcptokens/a/revoke", headers=user), 403, "forbidden"
    )
    assert_error(await api.client.delete(f"/api/v1/projects/{P}/mcptokens/a", headers=user), 403, "forbidden")
    assert_error(await api.client.delete(f"/api/v1/projects/{P}/mcptokens/b", headers=user), 404, "not_found")
    nobody = await api.user_with("nobody")
    assert_error(await api.client.get("/api/v1/mcptokens", headers=nobody), 403, "forbidden")


# --- revoke and delete -----------------------------------------------------------------------------------


async def test_revoke_by_id_or_name_is_soft_and_drops_the_tokens_rbac_definition(api: Api) -> None:
    await seed(api)
    by_id = await minted(api, name="by-id", bindings=[VIEW_PROJECTS])
    by_name = await minted(api, name="by-name", bindings=[VIEW_PROJECTS])
    urls = {
        "by-id": f"/api/v1/mcptokens/{by_id['mcpToken']['metadata']['id']}/revoke",
        "by-name": f"/api/v1/projects/{P}/mcptokens/by-name/revoke",
    }
    for name, body in (("by-id", by_id), ("by-name", by_name)):
        token, token_id = body["token"], body["mcpToken"]["metadata"]["id"]
        sha = tokens.token_sha(token)
        assert (await definitions(api))[f"mcptoken-{P}-{name}"] == [f"McpToken:{sha}"]
        response = await api.client.post(urls[name], headers=api.admin)
        assert response.status_code == 200, response.text
        revoked = response.json()
        assert revoked["metadata"]["id"] == token_id
        assert revoked["status"]["status"] == "revoked"
        assert revoked["status"]["revokedAt"] is not None
        assert revoked["status"]["rbacDefinition"] is None
        assert f"mcptoken-{P}-{name}" not in await definitions(api)
        assert not any(f"McpToken:{sha}" in subjects for subjects in (await definitions(api)).values())
        assert (await get_token(api, token_id))["status"]["status"] == "revoked"  # soft: still there
        assert_error(
            await api.client.get(f"/api/v1/projects/{P}", headers=bearer(token)), 401, "unauthenticated"
        )
        assert (await introspect(api, token)) == {"ok": False, "reason": "revoked"}
        again = await api.client.post(urls[name], headers=api.admin)  # revoking again changes nothing
        assert again.status_code == 200
        assert again.json()["status"]["revokedAt"] == revoked["status"]["revokedAt"]
    events = await audit_events(api, "token_revoked")
    assert sorted((e["tokenName"], e["tokenSha"], e["project"], e["user"]) for e in events) == sorted(
        [
            ("by-id", by_id["mcpToken"]["status"]["tokenSha"], P, ADMIN_EMAIL),
            ("by-name", by_name["mcpToken"]["status"]["tokenSha"], P, ADMIN_EMAIL),
        ]
        * 2
    )
    for url in (f"/api/v1/mcptokens/{'0' * 32}/revoke", f"/api/v1/projects/{P}/mcptokens/nope/revoke"):
        assert_error(await api.client.post(url, headers=api.admin), 404, "not_found")


async def test_delete_by_id_or_name_is_hard_and_drops_the_tokens_rbac_definition(api: Api) -> None:
    await seed(api)
    by_id = await minted(api, name="by-id", bindings=[VIEW_PROJECTS])
    by_name = await minted(api, name="by-name", bindings=[VIEW_PROJECTS])
    urls = {
        "by-id": f"/api/v1/mcptokens/{by_id['mcpToken']['metadata']['id']}",
        "by-name": f"/api/v1/projects/{P}/mcptokens/by-name",
    }
    for name, body in (("by-id", by_id), ("by-name", by_name)):
        token, token_id = body["token"], body["mcpToken"]["metadata"]["id"]
        response = await api.client.delete(urls[name], headers=api.admin)
        assert response.status_code == 204 and response.content == b""
        assert_error(
            await api.client.get(f"/api/v1/mcptokens/{token_id}", headers=api.admin), 404, "not_found"
        )
        assert_error(
            await api.client.get(f"/api/v1/projects/{P}/mcptokens/{name}", headers=api.admin),
            404,
            "not_found",
        )
        assert_error(await api.client.delete(urls[name], headers=api.admin), 404, "not_found")
        assert f"mcptoken-{P}-{name}" not in await definitions(api)
        assert_error(
            await api.client.get(f"/api/v1/projects/{P}", headers=bearer(token)), 401, "unauthenticated"
        )
        assert (await introspect(api, token)) == {"ok": False, "reason": "unknown"}
    events = await audit_events(api, "token_deleted")
    assert sorted((e["tokenName"], e["tokenSha"], e["project"]) for e in events) == [
        ("by-id", by_id["mcpToken"]["status"]["tokenSha"], P),
        ("by-name", by_name["mcpToken"]["status"]["tokenSha"], P),
    ]
    assert (await snapshot(api))["mcp_tokens"] == []


async def test_deleting_a_project_deletes_its_tokens_and_their_rbac_definitions(api: Api) -> None:
    await seed(api, P, "other")
    doomed = await minted(api, name="a", bindings=[VIEW_PROJECTS])
    await minted(api, name="b")
    kept = await minted(api, "other", name="a", bindings=[VIEW_PROJECTS])
    assert (await api.client.delete(f"/api/v1/projects/{P}", headers=api.admin)).status_code == 204
    listed = (await api.client.get("/api/v1/mcptokens", headers=api.admin)).json()["items"]
    assert [(i["metadata"]["project"], i["metadata"]["name"]) for i in listed] == [("other", "a")]
    assert_error(
        await api.client.get(f"/api/v1/mcptokens/{doomed['mcpToken']['metadata']['id']}", headers=api.admin),
        404,
        "not_found",
    )
    assert set(await definitions(api)) - {"admins"} == {"mcptoken-other-a"}
    assert (await introspect(api, doomed["token"])) == {"ok": False, "reason": "unknown"}
    assert (await introspect(api, kept["token"]))["ok"] is True
    assert len((await snapshot(api))["mcp_tokens"]) == 1


# --- token files -----------------------------------------------------------------------------------------


async def test_write_file_stores_the_token_privately_and_atomically(api: Api) -> None:
    await seed(api)
    body = await minted(api, writeFile=True)
    data_dir = Path(api.app.state.mcpd.settings.data_dir)
    path = data_dir / "mcp-tokens" / P / "agent"
    assert body["tokenPath"] == str(path)
    assert path.read_text().rstrip("\n") == body["token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "mcp-tokens").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["agent"]
    desktop = body["clientConfig"]["claudeDesktop"]["mcpServers"][f"mcpctl-{P}"]
    assert desktop["env"]["MCPCTL_TOKEN_FILE"] == str(path)
    assert "MCPCTL_TOKEN" not in desktop["env"]
    # re-provisioning the name replaces the file, still leaving no temp file behind
    assert (
        await api.client.post(f"/api/v1/projects/{P}/mcptokens/agent/revoke", headers=api.admin)
    ).status_code == 200
    assert not path.exists()  # a revoked token's file goes with it
    again = await minted(api, via="project", writeFile=True)
    assert path.read_text().rstrip("\n") == again["token"]
    assert os.listdir(path.parent) == ["agent"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a file that no longer holds the deleted token is left alone
    other = await minted(api, name="other", writeFile=True)
    Path(other["tokenPath"]).write_text("replaced by hand\n")
    assert (
        await api.client.delete(f"/api/v1/projects/{P}/mcptokens/other", headers=api.admin)
    ).status_code == 204
    assert Path(other["tokenPath"]).read_text() == "replaced by hand\n"
    assert (
        await api.client.delete(f"/api/v1/projects/{P}/mcptokens/agent", headers=api.admin)
    ).status_code == 204
    assert not path.exists()


# --- expiry ----------------------------------------------------------------------------------------------


async def test_a_token_with_a_short_ttl_works_until_it_expires(api: Api) -> None:
    await seed(api)
    body = await minted(api, ttl="2s", bindings=[VIEW_PROJECTS])
    headers = bearer(body["token"])
    assert (await api.client.get(f"/api/v1/projects/{P}", headers=headers)).status_code == 200
    assert (await introspect(api, body["token"]))["ok"] is True
    with anyio.fail_after(10):
        while (await api.client.get(f"/api/v1/projects/{P}", headers=headers)).status_code == 200:
            await anyio.sleep(0.1)
    assert_error(await api.client.get(f"/api/v1/projects/{P}", headers=headers), 401, "unauthenticated")
    assert (await introspect(api, body["token"])) == {"ok": False, "reason": "expired"}
    assert (await get_token(api, body["mcpToken"]["metadata"]["id"]))["status"]["status"] == "expired"
