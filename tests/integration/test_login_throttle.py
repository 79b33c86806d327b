"""Failed logins are throttled per client address and per account, and Argon2 work has a concurrency
cap: over a limit the caller gets 429 `too_many_requests` with Retry-After, and nobody else is
affected (DESIGN §12)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from mcpctl.core.errors import TooManyRequestsError
from mcpctl.mcpd.hashing import HashingPool
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, assert_error, make_settings, running

pytestmark = pytest.mark.anyio

WAIT = 10.0  # the bound on every wait in this module


@asynccontextmanager
async def mcpd(tmp_path: Path, database_url: str, **settings: Any) -> AsyncIterator[FastAPI]:
    async with running(make_settings(tmp_path, database_url, **settings)) as (app, _):
        yield app


@asynccontextmanager
async def peer(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `address` (the socket peer the throttle keys on)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mcpd.test") as client:
        yield client


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


def assert_throttled(response: httpx.Response, limit: str) -> None:
    assert_error(response, 429, "too_many_requests")
    assert response.json()["error"]["details"]["limit"] == limit
    assert int(response.headers["retry-after"]) >= 1


async def test_failed_logins_from_one_address_get_429_while_another_address_still_logs_in(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        mcpd(tmp_path, database_url, login_failures_per_address=3) as app,
        peer(app, "203.0.113.7") as noisy,
        peer(app, "198.51.100.9") as quiet,
    ):
        for n in range(3):
            assert_error(
                await login(noisy, f"guess{n}@example.com", "wrong-password"), 401, "unauthenticated"
            )
        assert_throttled(await login(noisy, "guess9@example.com", "wrong-password"), "login_address")
        # the throttled address is refused before its password is looked at, even a right one
        assert_throttled(await login(noisy, ADMIN_EMAIL, ADMIN_PASSWORD), "login_address")
        assert (await login(quiet, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


@pytest.mark.parametrize("target", [ADMIN_EMAIL, "nobody@example.com"], ids=["existing", "unknown"])
async def test_failed_logins_for_one_account_get_429_from_any_address_while_another_account_still_logs_in(
    tmp_path: Path, database_url: str, target: str
) -> None:
    """Unknown accounts are throttled exactly like existing ones: the answer tells nothing."""
    async with mcpd(tmp_path, database_url, login_failures_per_account=3) as app:
        async with peer(app, "127.0.0.1") as local:
            admin = {
                "Authorization": f"Bearer {(await login(local, ADMIN_EMAIL, ADMIN_PASSWORD)).json()['token']}"
            }
            created = await local.put(
                "/api/v1/users/bob",
                json={
                    "metadata": {"name": "bob"},
                    "spec": {"email": "bob@example.com", "password": "bob-password-1"},
                },
                headers=admin,
            )
            assert created.status_code == 201, created.text
        for n in range(3):
            async with peer(app, f"203.0.113.{n + 1}") as client:
                assert_error(await login(client, target.upper(), "wrong-password"), 401, "unauthenticated")
        async with peer(app, "203.0.113.50") as fresh:
            assert_throttled(await login(fresh, target, "wrong-password"), "login_account")
            assert (await login(fresh, "bob@example.com", "bob-password-1")).status_code == 200


async def test_a_successful_login_clears_the_failures_of_its_account(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        mcpd(tmp_path, database_url, login_failures_per_account=3) as app,
        peer(app, "203.0.113.7") as client,
    ):
        for _ in range(2):
            assert (await login(client, ADMIN_EMAIL, "wrong-password")).status_code == 401
        assert (await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200
        for _ in range(3):
            assert_error(await login(client, ADMIN_EMAIL, "wrong-password"), 401, "unauthenticated")


async def test_parallel_wrong_logins_from_one_address_get_no_more_password_checks_than_its_budget(
    tmp_path: Path, database_url: str
) -> None:
    statuses: list[int] = []
    async with (
        mcpd(tmp_path, database_url, login_failures_per_address=5) as app,
        peer(app, "203.0.113.7") as client,
    ):

        async def attempt(n: int) -> None:
            statuses.append((await login(client, f"guess{n}@example.com", "wrong-password")).status_code)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(attempt, n)
    assert sorted(statuses) == [401] * 5 + [429] * 15


async def test_password_checks_never_run_more_at_once_than_the_concurrency_cap() -> None:
    pool = HashingPool(concurrency=2, max_waiting=100, max_wait_seconds=WAIT)
    lock, running_now, most = threading.Lock(), [0], [0]

    def work() -> None:
        with lock:
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
        time.sleep(0.02)  # a stand-in for Argon2's CPU time, in the worker thread
        with lock:
            running_now[0] -= 1

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(pool.run, work)
    assert most[0] == 2
    assert (pool.busy, pool.waiting) == (0, 0)


async def test_a_password_check_beyond_the_queue_gets_429_at_once_and_one_in_it_after_the_bounded_wait() -> (
    None
):
    pool = HashingPool(concurrency=1, max_waiting=1, max_wait_seconds=0.2)
    release = threading.Event()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, lambda: release.wait(WAIT))
            while pool.busy < 1:
                await anyio.sleep(0.005)
            queued: list[BaseException] = []

            async def wait_in_queue() -> None:
                try:
                    await pool.run(lambda: None)
                except TooManyRequestsError as exc:
                    queued.append(exc)

            tg.start_soon(wait_in_queue)
            while pool.waiting < 1:
                await anyio.sleep(0.005)
            with pytest.raises(TooManyRequestsError) as beyond:
                await pool.run(lambda: None)
            assert beyond.value.details == {"limit": "password_hashing"}
            while not queued:
                await anyio.sleep(0.01)
            release.set()
    assert isinstance(queued[0], TooManyRequestsError)
    assert (pool.busy, pool.waiting) == (0, 0)
    assert await pool.run(lambda: 42) == 42
