"""A header-injecting reverse proxy on 127.0.0.1: the conformance suite cannot send an Authorization
header, so it talks to this proxy, which adds `Authorization: Bearer <token>` to every request and
forwards it to the gateway, streaming the answer back as it arrives (SSE is never buffered).

    python -m conformance.authproxy --port 8765 --target http://127.0.0.1:3000   # token in $AUTHPROXY_TOKEN

The token is `$AUTHPROXY_TOKEN` for every path, or per project: `$AUTHPROXY_PROJECT_TOKENS`, a JSON
object `{"<project>": "<token>"}`, gives a request to `/projects/<project>/…` that project's token (an
McpToken is valid for one project only), so one proxy serves every project of one gateway. A path
that has no token is forwarded without one (the gateway answers 401).

Paths and query strings are forwarded unchanged. Host and Origin are forwarded as the client sent them,
except that the proxy's own address is replaced by the target's: a request that was valid for the proxy
arrives exactly as it would have gone to the gateway directly, while a foreign Host or Origin (the
suite's DNS-rebinding probes) still reaches the gateway's own validation. Hop-by-hop headers are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import uvicorn
from starlette.types import Message, Receive, Scope, Send

TOKEN_ENV = "AUTHPROXY_TOKEN"
PROJECT_TOKENS_ENV = "AUTHPROXY_PROJECT_TOKENS"
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
CONNECT_TIMEOUT = 10.0


class AuthProxy:
    """The ASGI app: every request goes to `target` (scheme://host:port) with the bearer added."""

    def __init__(
        self, target: str, token: str | None, listen: str, project_tokens: dict[str, str] | None = None
    ) -> None:
        parts = urlsplit(target)
        self._target = f"{parts.scheme}://{parts.netloc}"
        self._target_host = parts.netloc.encode()
        self._listen_host = listen.encode()
        self._authorization = f"Bearer {token}".encode() if token else None
        self._by_project = {
            f"/projects/{project}/".encode(): f"Bearer {value}".encode()
            for project, value in (project_tokens or {}).items()
        }
        # No read timeout: an SSE stream may stay quiet for as long as the client keeps it open.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT, read=None), trust_env=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def authorization(self, path: bytes) -> bytes | None:
        """The Authorization value for a request to `path`: its project's token, else the default."""
        for prefix, value in self._by_project.items():
            if path.startswith(prefix):
                return value
        return self._authorization

    def request_headers(
        self, headers: Iterable[tuple[bytes, bytes]], path: bytes = b"/"
    ) -> list[tuple[bytes, bytes]]:
        """The client's headers as the target should see them: see the module docstring."""
        out: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered in (b"authorization", b"content-length"):
                continue
            if lowered == b"host" and value == self._listen_host:
                value = self._target_host
            elif lowered == b"origin" and value.endswith(b"://" + self._listen_host):
                value = value[: -len(self._listen_host)] + self._target_host
            out.append((lowered, value))
        authorization = self.authorization(path)
        if authorization is not None:
            out.append((b"authorization", authorization))
        return out

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        url = self._target + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = self._client.build_request(
            scope["method"],
            url,
            headers=self.request_headers(scope["headers"], scope["raw_path"]),
            content=body,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            message = f"authproxy: {self._target} unreachable: {type(exc).__name__}\n".encode()
            await send(
                {"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": message})
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (name.lower(), value)
                        for name, value in response.headers.raw
                        if name.lower() not in HOP_BY_HOP and name.lower() not in (b"date", b"server")
                    ],
                }
            )
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                try:
                    async for chunk in response.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except (OSError, httpx.HTTPError):
                    pass  # the client or the target went away mid-stream: nothing left to tell either
                group.cancel_scope.cancel()
        finally:
            await response.aclose()


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body (MCP requests are small), and whether the client went away first."""
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="listen port")
    parser.add_argument("--target", required=True, help="where to forward, e.g. http://127.0.0.1:3000")
    parser.add_argument(
        "--token-env", default=TOKEN_ENV, help=f"variable holding the token (default {TOKEN_ENV})"
    )
    return parser.parse_args(argv)


def _project_tokens() -> dict[str, str]:
    raw = os.environ.get(PROJECT_TOKENS_ENV, "")
    if not raw:
        return {}
    try:
        tokens = json.loads(raw)
    except ValueError as exc:
        sys.exit(f"authproxy: ${PROJECT_TOKENS_ENV} is not JSON: {exc}")
    if not isinstance(tokens, dict) or not all(isinstance(v, str) and v for v in tokens.values()):
        sys.exit(f'authproxy: ${PROJECT_TOKENS_ENV} must be a JSON object {{"<project>": "<token>"}}')
    return tokens


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    token = os.environ.get(args.token_env, "")
    project_tokens = _project_tokens()
    if not token and not project_tokens:
        sys.exit(
            f"authproxy: ${args.token_env} and ${PROJECT_TOKENS_ENV} are empty: there is no token to add"
        )
    app: Any = AuthProxy(args.target, token or None, f"{args.host}:{args.port}", project_tokens)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
