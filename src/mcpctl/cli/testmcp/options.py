"""The input of `test mcp`, checked before anything is sent: a mistake is a usage error naming the flag."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mcpctl.cli.errors import usage_error

ERAS = ("auto", "legacy", "2026-07-28")
OUTPUTS = ("text", "json", "junit")
DEFAULT_TIMEOUT = 10.0
MAX_REPEAT = 10_000

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the MCP transport itself; overriding them would test mcpctl, not the endpoint.
_TRANSPORT_HEADERS = frozenset(
    {"accept", "content-type", "content-length", "host", "mcp-session-id", "mcp-protocol-version"}
    | {"mcp-method", "mcp-name", "last-event-id"}
)


@dataclass(frozen=True)
class Options:
    url: str
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    expect_tools: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    era: str = "auto"
    health: bool = True
    repeat: int | None = None

    @property
    def health_url(self) -> str:
        return health_url(self.url)

    def request_headers(self, *, with_token: bool = True) -> dict[str, str]:
        """The headers every MCP request carries: --header values, and the bearer unless told not to."""
        headers = dict(self.headers)
        if with_token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


def parse_url(url: str) -> str:
    """An absolute http(s) URL with a host, or a usage error naming URL."""
    problem = _url_problem(url)
    if problem is not None:
        raise usage_error(f"URL {url!r}: {problem}")
    return url


def _url_problem(url: str) -> str | None:
    if not url or url != url.strip() or any(c.isspace() for c in url):
        return "must be an absolute http:// or https:// URL without spaces"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "port 0 is not a port"
    if parts.fragment:
        return "must not have a #fragment"
    return None


def health_url(url: str) -> str:
    """`<scheme>://<host>[:<port>]/healthz`: the base of the MCP URL, without credentials or path."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/healthz"


def parse_headers(values: Iterable[str], *, token: str | None) -> dict[str, str]:
    """`--header 'K: V'`, repeatable. Names are HTTP tokens, each given once."""
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for item in values:
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not _HEADER_NAME.match(name):
            raise usage_error(f"--header {item!r}: expected 'Name: value'")
        if "\r" in value or "\n" in value:
            raise usage_error(f"--header {name}: the value must be one line")
        lowered = name.lower()
        if lowered in _TRANSPORT_HEADERS:
            raise usage_error(f"--header {name}: set by mcpctl's MCP client, not by a flag")
        if lowered == "authorization" and token:
            raise usage_error("--header Authorization: cannot be combined with --token")
        if lowered in seen:
            raise usage_error(f"--header {name}: given twice")
        seen.add(lowered)
        headers[name] = value
    return headers


def parse_arguments(text: str | None, *, tool: str | None) -> dict[str, Any] | None:
    """`--args JSON`: a JSON object, and only together with --tool."""
    if text is None:
        return None
    if tool is None:
        raise usage_error("--args: needs --tool (the tool to call with these arguments)")
    return parse_json_object(text, "--args")


def parse_json_object(text: str, flag: str) -> dict[str, Any]:
    """A flag's value that must be a JSON object; otherwise a usage error naming the flag."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise usage_error(f"{flag}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise usage_error(f"{flag}: must be a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"


def parse_tool(name: str | None) -> str | None:
    if name is not None and not name.strip():
        raise usage_error("--tool: give a tool name")
    return name


def parse_expect_tools(value: str | None) -> tuple[str, ...]:
    """`--expect-tools a,b`: names separated by commas (blanks ignored), at least one."""
    if value is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not names:
        raise usage_error("--expect-tools: give tool names separated by commas")
    return names


def parse_timeout(seconds: float | None) -> float:
    if seconds is None:
        return DEFAULT_TIMEOUT
    if not math.isfinite(seconds) or seconds <= 0:
        raise usage_error(f"--timeout: must be a positive number of seconds, got {seconds:g}")
    return seconds


def parse_repeat(count: int | None) -> int | None:
    if count is not None and not 1 <= count <= MAX_REPEAT:
        raise usage_error(f"--repeat: must be a count from 1 to {MAX_REPEAT}, got {count}")
    return count


def parse_token(token: str | None) -> str | None:
    """An empty --token (or $MCPCTL_TOKEN) is no token; one with spaces cannot be a bearer."""
    if not token:
        return None
    if any(c.isspace() for c in token):
        raise usage_error("--token: a bearer token has no spaces")
    return token
