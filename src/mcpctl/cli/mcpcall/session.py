"""One conversation with a project endpoint on the official `mcp` SDK client, in either era, with
its failures said the CLI's way (DESIGN §9): a refusal by the endpoint (401, 403, 404 with mcpd's
error body) is `Error from server (Reason): <the endpoint's message>`, no connection is the
unreachable error, no answer within `--timeout` is an error naming the wait; all exit 1.

Every step (connect, each page of tools/list, the call) gets `--timeout` seconds: one cancel scope
around the whole conversation, its deadline re-armed per step (the SDK's task groups live inside it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from typing import Any

import anyio
import click
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import Implementation
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpctl.cli.errors import CliError, ServerError, UnreachableError
from mcpctl.cli.mcpcall.access import Access
from mcpctl.cli.testmcp.wire import leaves

logger = logging.getLogger(__name__)
MAX_PAGES = 1000
_LIBRARY_LOGGERS = ("mcp", "httpx2", "httpcore")


@dataclass(frozen=True)
class Target:
    access: Access
    era: str
    timeout: float


class _Refusals:
    """An httpx2 response hook keeping the endpoint's first refusal in mcpd's error shape."""

    def __init__(self) -> None:
        self.first: ServerError | None = None

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code < 400 or self.first is not None:
            return
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            return
        error = body.get("error") if isinstance(body, dict) and "jsonrpc" not in body else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            self.first = ServerError(response.status_code, code, error["message"])


class Conversation:
    """The connected client; every method runs one bounded step."""

    def __init__(self, client: Client, scope: anyio.CancelScope, timeout: float) -> None:
        self._client = client
        self._scope = scope
        self._timeout = timeout

    def _arm(self) -> None:
        self._scope.deadline = anyio.current_time() + self._timeout

    async def tools(self) -> list[dict[str, Any]]:
        """Every page of tools/list, as the tools' JSON objects."""
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            self._arm()
            page = await self._client.list_tools(cursor=cursor)
            tools.extend(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools
        raise CliError(f"tools/list did not end after {MAX_PAGES} pages")

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The CallToolResult as JSON."""
        self._arm()
        result = await self._client.call_tool(name, arguments)
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)


@asynccontextmanager
async def conversation(target: Target) -> AsyncIterator[Conversation]:
    """Connected to `target` for the block; a failure anywhere comes out as a CliError."""
    for name in _LIBRARY_LOGGERS:  # our one error line says it; their log lines would only repeat it
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    refusals = _Refusals()
    access = target.access
    scope = anyio.CancelScope(deadline=anyio.current_time() + target.timeout)
    answered = False  # once the block is done, a failed or slow goodbye (closing the session) is no failure
    try:
        with scope:
            async with (
                httpx2.AsyncClient(
                    timeout=httpx2.Timeout(target.timeout),
                    headers={"Authorization": f"Bearer {access.token}"},
                    event_hooks={"response": [refusals.on_response]},
                ) as http,
                Client(
                    streamable_http_client(access.url, http_client=http),
                    mode="legacy" if target.era == "legacy" else "auto",
                    cache=None,
                    client_info=Implementation(name="mcpctl", version=dist_version("mcpctl")),
                ) as client,
            ):
                if target.era in MODERN_PROTOCOL_VERSIONS and client.protocol_version != target.era:
                    raise CliError(
                        f"{access.url} does not speak {target.era} "
                        f"(it answered with {client.protocol_version}); try --era auto"
                    )
                yield Conversation(client, scope, target.timeout)
                answered = True
                scope.deadline = anyio.current_time() + target.timeout  # closing is bounded too
    except (CliError, click.ClickException):
        raise
    except Exception as exc:
        if not answered:
            raise _translate(exc, refusals.first, target) from exc
        logger.debug("closing the session failed after the answer", exc_info=True)
    if scope.cancelled_caught and not answered:
        raise _timed_out(target)


def _translate(exc: BaseException, refusal: ServerError | None, target: Target) -> Exception:
    found = leaves(exc)
    ours = next((e for e in found if isinstance(e, CliError | click.ClickException)), None)
    if ours is not None:
        return ours
    if refusal is not None:
        return refusal
    if any(isinstance(e, TimeoutError | httpx2.TimeoutException) for e in found):
        return _timed_out(target)
    transport = next((e for e in found if isinstance(e, httpx2.TransportError)), None)
    if transport is not None:
        detail = str(transport) or type(transport).__name__
        if target.access.mcpd_url is not None:
            return UnreachableError(target.access.mcpd_url, detail)
        return CliError(f"cannot reach {target.access.url}: {detail}")
    leaf = found[0]
    if isinstance(leaf, MCPError):
        return CliError(f"{target.access.url} answered with an error: {leaf.message} (code {leaf.code})")
    return CliError(f"{type(leaf).__name__}: {leaf}")


def _timed_out(target: Target) -> CliError:
    return CliError(f"no answer from {target.access.url} within {target.timeout:g} s (--timeout)")
