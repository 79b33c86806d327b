"""Writing and querying AuditEvents (DESIGN §7)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.policy import Principal
from mcpctl.mcpd.kinds.base import iso
from mcpctl.storage import tables

logger = logging.getLogger(__name__)

KINDS = (
    "tool_call",
    "resource_read",
    "prompt_get",
    "token_created",
    "token_revoked",
    "token_deleted",
    "rbac_denied",
    "login",
    "resource_changed",
)


def principal_fields(principal: Principal) -> dict[str, Any]:
    """Who did it, for an event: the user, or a token (with its owner as the user) and its project."""
    if principal.kind == "token":
        return {
            "user": principal.owner,
            "token_name": principal.token_name,
            "token_sha": principal.token_sha,
            "project": principal.project,
        }
    return {"user": principal.email}


def client_addr(request: Any) -> str | None:
    """The peer address as the socket saw it (proxy headers are not trusted), bounded for the column."""
    client = getattr(request, "client", None)
    return client.host[:64] if client else None


def record(session: AsyncSession, kind: str, *, outcome: str, **fields: Any) -> None:
    """Add an event to the unit of work (committed, or not, with what it describes)."""
    session.add(tables.AuditEvent(kind=kind, outcome=outcome, **fields))


async def query(
    session: AsyncSession,
    *,
    project: str | None,
    token_name: str | None,
    token_sha: str | None,
    kind: str | None,
    user: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[tables.AuditEvent]:
    stmt = sa.select(tables.AuditEvent)
    for column, value in (
        (tables.AuditEvent.project, project),
        (tables.AuditEvent.token_name, token_name),
        (tables.AuditEvent.token_sha, token_sha),
        (tables.AuditEvent.kind, kind),
        (tables.AuditEvent.user, user),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(tables.AuditEvent.time >= since)
    if until is not None:
        stmt = stmt.where(tables.AuditEvent.time <= until)
    stmt = stmt.order_by(tables.AuditEvent.time.desc(), tables.AuditEvent.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


def to_object(event: tables.AuditEvent) -> dict[str, Any]:
    spec = {
        "time": iso(event.time),
        "kind": event.kind,
        "user": event.user,
        "tokenName": event.token_name,
        "tokenSha": event.token_sha,
        "project": event.project,
        "server": event.server,
        "target": event.target,
        "verb": event.verb,
        "outcome": event.outcome,
        "durationMs": event.duration_ms,
        "sessionId": event.session_id,
        "requestId": event.request_id,
        "clientAddr": event.client_addr,
    }
    return {"kind": "AuditEvent", "metadata": {"name": event.id}, "spec": spec, "status": {}}
