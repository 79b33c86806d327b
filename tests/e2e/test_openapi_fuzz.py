"""Every operation in mcpd's live OpenAPI document, fuzzed with schemathesis as the admin: no 5xx,
only documented status codes, and responses that match their declared schemas."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.e2e.conftest import Mcpd, running_mcpd

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MAX_EXAMPLES = 15

# The bootstrap admin, its group and its RBAC definition: a fuzzed write or delete of one of these could
# lock the admin out and turn the rest of the run into 403s that test nothing.
_PROTECTED = {"admin", "admins"}


@pytest.fixture(scope="module")
def fuzzed_mcpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mcpd]:
    # Fuzzed logins fail by the dozen from one address: the login throttle (tested on its own in
    # tests/integration/test_login_throttle.py) would otherwise answer 429 to the admin's own logins.
    unthrottled = {"MCPD_LOGIN_FAILURES_PER_ADDRESS": "100000", "MCPD_LOGIN_FAILURES_PER_ACCOUNT": "100000"}
    with running_mcpd(tmp_path_factory.mktemp("mcpd-fuzz"), "sqlite", **unthrottled) as daemon:
        yield daemon


def _login(daemon: Mcpd) -> str:
    creds = daemon.admin_credentials()
    response = httpx.post(
        f"{daemon.url}/api/v1/auth/login",
        json={"email": creds["email"], "password": creds["password"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, daemon: Mcpd, bearer: str) -> None:
    # schemathesis' own pytest integration (`schema.parametrize()` / `from_fixture`) reads the private
    # `_nodeid` of pytest items, which pytest 9 no longer has; so hypothesis drives each operation here.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run: CI stays reproducible
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if (
            case.method in ("PUT", "PATCH", "DELETE")
            and (case.path_parameters or {}).get("name") in _PROTECTED
        ):
            return
        # logout deletes the bearer it is sent: give it a session of its own
        token = _login(daemon) if case.path == "/api/v1/auth/logout" else bearer
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    run()


def test_every_operation_answers_without_server_errors_and_as_documented(
    subtests: pytest.Subtests, fuzzed_mcpd: Mcpd
) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_mcpd.url}/openapi.json", timeout=10)
    bearer = _login(fuzzed_mcpd)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40, [op.label for op in operations]

    for operation in operations:
        # negative data needs an input to break; /healthz, /auth/me and the like have none
        has_inputs = any(len(part) for part in (operation.path_parameters, operation.query, operation.body))
        modes = (
            [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if has_inputs else [GenerationMode.POSITIVE]
        )
        for mode in modes:
            with subtests.test(operation=operation.label, mode=mode.value):
                _fuzz(operation, mode, fuzzed_mcpd, bearer)
