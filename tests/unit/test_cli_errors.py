"""mcpd's error answers become `Error from server (Reason): message`, exit 1; no answer at all is
`error: cannot reach mcpd at URL: …`; the bearer never appears in any output."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from mcpctl.cli.context import AppState
from mcpctl.cli.main import cli

TOKEN = "s3cret-session-bearer"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("MCPCTL_TOKEN", TOKEN)
    monkeypatch.setenv("MCPCTL_MCPD_URL", "http://mcpd.test:3000")


def _answer(status: int, code: str | None, message: str = "boom") -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if code is None:
            return httpx.Response(status, text="plain failure")
        return httpx.Response(
            status, json={"error": {"code": code, "message": message, "details": {}}, "requestId": "r1"}
        )

    return httpx.MockTransport(handler)


def run(transport: httpx.BaseTransport, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=AppState(transport=transport))


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (404, "not_found", "NotFound"),
        (403, "forbidden", "Forbidden"),
        (403, "token_limit_exceeded", "Forbidden"),
        (409, "already_exists", "AlreadyExists"),
        (409, "conflict", "Conflict"),
        (400, "invalid", "BadRequest"),
        (401, "unauthenticated", "Unauthorized"),
        (413, "payload_too_large", "RequestEntityTooLarge"),
        (502, "upstream_error", "BadGateway"),
        (500, "internal", "InternalError"),
        (405, None, "MethodNotAllowed"),
    ],
)
def test_error_answers_are_translated_to_kubectl_reasons(status: int, code: str | None, reason: str) -> None:
    result = run(_answer(status, code, 'server "time" not found'), "get", "servers", "time")
    assert result.exit_code == 1
    message = 'server "time" not found' if code else "plain failure"
    if status == 401:  # the CLI's own bearer (here from $MCPCTL_TOKEN) was refused: what to do
        message += "; the token in $MCPCTL_TOKEN has expired or was revoked; set a valid one, or unset it"
        message += " to use your login session"
    assert result.stderr == f"Error from server ({reason}): {message}\n"
    assert result.stdout == ""


def test_every_verb_translates_errors_the_same_way() -> None:
    transport = _answer(409, "conflict", "in use by project monitoring")
    for args in (
        ["delete", "server", "time"],
        ["patch", "server", "time", "replicas=2"],
        ["describe", "server", "time"],
        ["create", "secret", "s", "--data", "K=V"],
    ):
        result = run(transport, *args)
        assert result.exit_code == 1
        assert result.stderr == "Error from server (Conflict): in use by project monitoring\n"


def test_connection_refused_names_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = run(httpx.MockTransport(refuse), "get", "servers")
    assert result.exit_code == 1
    assert (
        result.stderr == "error: cannot reach mcpd at http://mcpd.test:3000: [Errno 111] Connection refused\n"
    )


def test_without_a_token_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCPCTL_TOKEN")
    result = run(_answer(500, "internal"), "get", "servers")
    assert result.exit_code == 1
    assert result.stderr == "error: not logged in (run: mcpctl login)\n"


def test_several_names_report_each_failure_and_print_the_rest() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing"):
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "gone"}})
        return httpx.Response(200, json={"kind": "Server", "metadata": {"name": "time"}, "spec": {}})

    result = run(httpx.MockTransport(handler), "get", "servers", "time", "missing", "-o", "name")
    assert result.exit_code == 1
    assert result.stdout == "server/time\n"
    assert result.stderr == "Error from server (NotFound): gone\n"


def test_the_bearer_never_appears_in_output() -> None:
    def echo_auth(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": "invalid", "message": "bad"}})

    for args in (["get", "servers"], ["status"], ["apply", "-f", "-"]):
        result = CliRunner().invoke(
            cli,
            args,
            input="kind: Group\nmetadata: {name: g}\n",
            obj=AppState(transport=httpx.MockTransport(echo_auth)),
        )
        assert TOKEN not in result.output
