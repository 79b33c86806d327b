"""Hardening found by review: deeply nested JSON on the per-server proxy, tokens hidden in encoded
query strings, who may scrape /metrics, and a full disk."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mcp_types import PARSE_ERROR

from tests.e2e.rawmcp import INITIALIZE
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, assert_error, make_settings, running

pytestmark = pytest.mark.anyio

P = "proj"
STDIO = {"transport": "stdio", "command": "true"}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/api/v1/servers/s/mcp", f"/api/v1/projects/{P}/servers/s/mcp"])
async def test_the_server_proxy_answers_deeply_nested_json_with_a_parse_error_at_once(
    api: Api, path: str
) -> None:
    assert (await api.put("servers", "s", STDIO)).status_code == 201
    assert (await api.put("projects", P, {"servers": ["s"]})).status_code == 201
    headers = {**api.admin, "Content-Type": "application/json", "Accept": "application/json"}
    bodies = [
        _nested(100_000),
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":'
        + _nested(5_000)
        + "}}}",
    ]
    for body in bodies:
        started = time.monotonic()
        answer = await api.client.post(path, content=body, headers=headers)
        assert time.monotonic() - started < 5
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == PARSE_ERROR


async def _token(api: Api) -> str:
    await api.put("projects", P, {})
    body: dict[str, Any] = {"project": P, "name": "t", "bindings": [{"role": "view", "resource": "projects"}]}
    minted = await api.client.post("/api/v1/mcptokens", json=body, headers=api.admin)
    assert minted.status_code == 201, minted.text
    token: str = minted.json()["token"]
    return token


@pytest.mark.parametrize("encode", [lambda t: t.replace("_", "%5F"), lambda t: t.replace("_", "%255F")])
async def test_a_percent_encoded_token_in_the_query_string_is_refused(api: Api, encode: Any) -> None:
    token = await _token(api)
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    answer = await api.client.post(f"/projects/{P}/mcp?x={encode(token)}", json=INITIALIZE, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid"


# ---- the data dir: private files, a full disk ------------------------------------------------------


BIG_SECRET = {"metadata": {"name": "big"}, "spec": {"data": {f"k{i}": "v" * 60_000 for i in range(10)}}}


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_the_data_dir_is_private_and_the_database_files_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # as an older mcpd (or a umask of 022) left it
    url = f"sqlite+aiosqlite:///{data / 'mcpd.db'}"
    async with running(make_settings(tmp_path, url)) as (_, client):
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200
        assert _mode(data) == 0o700
        files = [data / name for name in ("mcpd.db", "mcpd.db-wal", "mcpd.db-shm", "secret.key")]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


async def test_a_write_the_database_has_no_room_for_is_507_and_readyz_fails_until_one_succeeds(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'mcpd.db'}"
    async with running(make_settings(tmp_path, url)) as (app, client):
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        admin = {
            "Authorization": f"Bearer {(await client.post('/api/v1/auth/login', json=login)).json()['token']}"
        }
        db = app.state.mcpd.db
        async with db.write() as session:  # SQLITE_FULL for real: the one write connection's size limit
            pages = (await session.execute(sa.text("PRAGMA page_count"))).scalar_one()
            await session.execute(sa.text(f"PRAGMA max_page_count = {pages}"))
        body = BIG_SECRET
        assert_error(
            await client.put("/api/v1/secrets/big", json=body, headers=admin), 507, "insufficient_storage"
        )
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["storage"] == "full"
        async with db.write() as session:
            await session.execute(sa.text("PRAGMA max_page_count = 1073741823"))
        assert (await client.put("/api/v1/secrets/big", json=body, headers=admin)).status_code == 201
        assert (await client.get("/readyz")).status_code == 200


@contextmanager
def _tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, timeout=10
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def _fill(directory: Path) -> Path:
    """Take every free byte of `directory`'s file system (bounded by its size)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(1024):  # 64 MiB at most, far above the tmpfs size
            try:
                os.write(fd, chunk)
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_answers_507_and_fails_readyz_and_both_recover(tmp_path: Path) -> None:
    with _tiny_tmpfs(tmp_path / "disk", "8m") as disk:
        data = disk / "data"
        url = f"sqlite+aiosqlite:///{data / 'mcpd.db'}"
        settings = make_settings(tmp_path, url, data_dir=data, data_dir_min_free_bytes=512 * 1024)
        async with running(settings) as (_, client):
            login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            token = (await client.post("/api/v1/auth/login", json=login)).json()["token"]
            admin = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/readyz")).status_code == 200
            assert (
                await client.put(
                    f"/api/v1/projects/{P}", json={"metadata": {"name": P}, "spec": {}}, headers=admin
                )
            ).status_code == 201
            mint = {"project": P, "name": "t", "bindings": [{"role": "view", "resource": "projects"}]}
            project_token = (await client.post("/api/v1/mcptokens", json=mint, headers=admin)).json()["token"]
            filler = _fill(disk)
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["storage"] == "full"
            body = BIG_SECRET
            assert_error(
                await client.put("/api/v1/secrets/big", json=body, headers=admin),
                507,
                "insufficient_storage",
            )
            assert (
                await client.get("/api/v1/projects", headers=admin)
            ).status_code == 200  # reads still work
            mcp = {**MCP_HEADERS, "Authorization": f"Bearer {project_token}", "Host": "127.0.0.1"}
            opened = await client.post(f"/projects/{P}/mcp", json=INITIALIZE, headers=mcp)
            assert opened.status_code == 200, opened.text  # its first use is not recorded, and that is all
            filler.unlink()
            assert (await client.put("/api/v1/secrets/big", json=body, headers=admin)).status_code == 201
            assert (await client.get("/readyz")).status_code == 200


# ---- /metrics: it names every server ----------------------------------------------------------------


async def test_metrics_need_a_principal_who_may_view_every_server(api: Api) -> None:
    assert (await api.put("servers", "secret-name", STDIO)).status_code == 201
    assert_error(await api.client.get("/metrics"), 401, "unauthenticated")
    assert_error(
        await api.client.get("/metrics", headers={"Authorization": "Bearer nope"}), 401, "unauthenticated"
    )
    one = await api.user_with("one", {"role": "view", "resource": "servers", "name": "other"})
    assert_error(await api.client.get("/metrics", headers=one), 403, "forbidden")
    viewer = await api.user_with("viewer", {"role": "view", "resource": "servers"})
    scraped = await api.client.get("/metrics", headers=viewer)
    assert scraped.status_code == 200 and "# TYPE mcpd_instances gauge" in scraped.text


async def test_the_metrics_token_scrapes_everything_and_public_metrics_name_no_server(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'mcpd.db'}"
    settings = make_settings(tmp_path, url, metrics_token="scrape-secret-1", metrics_public=True)
    async with running(settings) as (_, client):
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        admin = {
            "Authorization": f"Bearer {(await client.post('/api/v1/auth/login', json=login)).json()['token']}"
        }
        body = {"metadata": {"name": "secret-name"}, "spec": STDIO}
        assert (await client.put("/api/v1/servers/secret-name", json=body, headers=admin)).status_code == 201
        full = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1"})
        assert full.status_code == 200 and "# TYPE mcpd_instances gauge" in full.text
        public = await client.get("/metrics")
        assert public.status_code == 200 and "mcpd_http_requests_total" in public.text
        assert "secret-name" not in public.text and "mcpd_instances" not in public.text
        assert_error(
            await client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "unauthenticated"
        )


@pytest.mark.parametrize("depth", [500, 100_000])
async def test_deeply_nested_rest_bodies_are_400_invalid(api: Api, depth: int) -> None:
    body = '{"metadata": {"name": "deep"}, "spec": {"description": ' + _nested(depth) + "}}"
    headers = {**api.admin, "Content-Type": "application/json"}
    assert_error(await api.client.put("/api/v1/projects/deep", content=body, headers=headers), 400, "invalid")
