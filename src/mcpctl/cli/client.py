"""The one way the CLI talks to mcpd: HTTP with a bearer, mcpd's error body turned into ServerError."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

from mcpctl.cli.errors import CliError, NotLoggedInError, ServerError, UnreachableError
from mcpctl.core.tokens import looks_like_token

USER_AGENT = "mcpctl/0.1"
API = "/api/v1"


def _segment(part: str) -> str:
    encoded = quote(part, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded  # no dot-segment removal


def api_path(*parts: str) -> str:
    """`/api/v1/<parts…>` with every part percent-encoded, so a name can never change the route."""
    return "/".join([API, *(_segment(part) for part in parts)])


def error_from_response(response: httpx.Response) -> ServerError:
    """Read mcpd's `{"error": {code, message}}` body; fall back to whatever the body says."""
    code: str | None = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            message = str(error.get("message") or "")
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
    if not message:
        message = response.text.strip()[:200] or response.reason_phrase or f"HTTP {response.status_code}"
    return ServerError(response.status_code, code, message)


class ApiClient:
    """A thin synchronous client bound to one mcpd URL and (optionally) one bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url
        self._token = token
        self._http = httpx.Client(
            base_url=base_url, transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    @property
    def uses_mcptoken(self) -> bool:
        """Whether the bearer is an McpToken (limited to its project's paths) and not a session."""
        return bool(self._token) and looks_like_token(str(self._token))

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        auth: bool = True,
        bearer: str | None = None,
    ) -> httpx.Response:
        """Send one request; raise ServerError for an error status, UnreachableError for no answer.
        `bearer` sends that token instead of the client's own (introspection of a token)."""
        headers: dict[str, str] = {}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        elif auth:
            if not self._token:
                raise NotLoggedInError()
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._http.request(method, path, params=params, json=json, headers=headers)
        except httpx.TransportError as exc:
            raise UnreachableError(self.base_url, str(exc) or type(exc).__name__) from exc
        if response.status_code == 401 and bearer is None and auth:
            error = error_from_response(response)
            raise ServerError(error.status, error.code, f"{error.message}; {self._refused_hint()}")
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _refused_hint(self) -> str:
        """What to do when mcpd refuses this client's own bearer: it came from $MCPCTL_TOKEN (which
        wins whenever it is set) or from the login session in the config file."""
        if os.environ.get("MCPCTL_TOKEN") == self._token:
            return (
                "the token in $MCPCTL_TOKEN has expired or was revoked; "
                "set a valid one, or unset it to use your login session"
            )
        return 'your login session has expired or was revoked; run "mcpctl login"'

    def json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        auth: bool = True,
        bearer: str | None = None,
    ) -> Any:
        """Like request(), returning the decoded JSON body (None for an empty one)."""
        response = self.request(method, path, params=params, json=json, auth=auth, bearer=bearer)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(f"mcpd answered {method} {path} with a body that is not JSON") from exc

    def healthy(self) -> tuple[bool, str]:
        """Whether /healthz answers 2xx, and a short note saying why not."""
        try:
            self.request("GET", "/healthz", auth=False)
        except UnreachableError as exc:
            return False, exc.detail
        except ServerError as exc:
            return False, f"/healthz answered {exc.status}"
        return True, "ok"
