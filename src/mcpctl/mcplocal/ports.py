"""What the router needs from the control plane, and what it hands back (DESIGN §1: one port, two
adapters). Nothing here knows whether mcpd is in this process or across HTTP."""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mcpctl.core.namespacing import PrefixMode
from mcpctl.core.policy import Principal, can_run_server
from mcpctl.core.proxymodels import Stage

Message = dict[str, Any]
Notify = Callable[[Message], Awaitable[None]]
# Asks the caller's client on an upstream's behalf (sampling/createMessage, elicitation/create,
# roots/list): takes {"method", "params"}, returns {"result": …} or {"error": …}.
Relay = Callable[[Message], Awaitable[Message]]

# JSON-RPC error code for "the upstream cannot answer" (the same one mcpd's per-server proxy uses).
UPSTREAM_UNAVAILABLE = -32000
# JSON-RPC error code for "mcpd refused the caller's token" (split mode, a response already started).
TOKEN_REFUSED = -32003


class ControlPlaneUnavailable(Exception):
    """mcpd cannot be reached (split mode): the endpoint answers 503 and /readyz fails."""


class UpstreamFailure(Exception):
    """A server of the project could not answer (not running, crashed, timed out, unreachable)."""

    def __init__(self, server: str, message: str, code: int = UPSTREAM_UNAVAILABLE):
        super().__init__(message)
        self.server, self.code = server, code


@dataclass(frozen=True)
class Caller:
    """An authenticated McpToken, as introspection describes it."""

    principal: Principal
    bearer: str = field(repr=False)  # forwarded to mcpd only (split mode); never to an upstream

    @property
    def project(self) -> str:
        assert self.principal.project is not None
        return self.principal.project

    @property
    def token_sha(self) -> str:
        assert self.principal.token_sha is not None
        return self.principal.token_sha

    def may_use(self, server: str) -> bool:
        """Token tool scoping (DESIGN §4): the token's reach, as mcpd computed it."""
        return can_run_server(self.principal, server)


@dataclass(frozen=True)
class Introspection:
    ok: bool
    reason: str | None = None  # malformed | unknown | revoked | expired
    principal: Principal | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ProjectPrompt:
    """A project's own Prompt (DESIGN §2, §10): delivered by the gate, listed as an MCP prompt."""

    name: str
    text: str
    priority: int = 5
    tags: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class ProjectView:
    name: str
    servers: tuple[str, ...]  # in project order
    prefix_mode: PrefixMode = "always"
    separator: str = "__"
    # The project's proxy model, resolved by mcpd (core.proxymodels): its name and its stages in order.
    proxy_model: str = "direct"
    stages: tuple[Stage, ...] = ()
    prompts: tuple[ProjectPrompt, ...] = ()


_event_ids = random.Random()  # its own generator: a random.seed() elsewhere cannot repeat event ids
os.register_at_fork(after_in_child=_event_ids.seed)  # nor can a forked child (seeded from the OS)


def _event_id() -> str:
    """128 random bits in 32 hex digits (uuid4's form): unique across every process that audits
    into one table (the table keeps the first of two events with one id), and a fifth of uuid4's
    cost (no system call per event). An event's id is not a secret."""
    return f"{_event_ids.getrandbits(128):032x}"


@dataclass(frozen=True)
class AuditRecord:
    kind: str  # tool_call | resource_read | prompt_get
    principal: Principal
    project: str | None
    server: str | None
    target: str
    outcome: str  # ok | error | denied
    duration_ms: int
    session_id: str | None = None
    request_id: str | None = None
    client_addr: str | None = None
    # Its identity and time from the moment it happened: a replay from the spool stores it once,
    # with its own time.
    event_id: str = field(default_factory=_event_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


class Upstream(Protocol):
    """One server of a project, as the router reaches it."""

    name: str

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None,
        notify: Notify | None,
        relay: Relay | None = None,
    ) -> Message:
        """The upstream's JSON-RPC response (`result` or `error`), with the caller's own progress
        tokens in notifications; UpstreamFailure when no answer can be had. `timeout` None means the
        server's own call timeout."""
        ...


ServerEvent = Callable[[str, Message], Awaitable[None]]  # (server, notification) from an upstream


class ControlPlane(Protocol):
    @property
    def healthy(self) -> bool:
        """False after mcpd could not be reached, until `ready()` reaches it again."""
        ...

    async def introspect(self, bearer: str) -> Introspection: ...

    async def project(self, caller: Caller) -> ProjectView: ...

    @property
    def views_per_token(self) -> bool:
        """Whether `project()` reads with the caller's token, so that its view is that token's
        (filtered by its reach, refused once it is revoked); else a view is the whole project's,
        the same for every caller (each caller's reach is applied by the router)."""
        ...

    def upstream(self, caller: Caller | None, server: str, session_id: str | None) -> Upstream:
        """`caller` None: the control plane's own discovery (in-process adapter only)."""
        ...

    async def ready(self) -> str | None:
        """None when the control plane answers, else why not."""
        ...

    def watch(self, callback: ServerEvent) -> None:
        """Deliver upstream notifications that belong to no request (list_changed, resource
        updates). An adapter that cannot watch relies on the discovery TTL."""
        ...

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        """Store a batch of AuditEvents; raise when they could not be stored."""
        ...
