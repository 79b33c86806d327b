"""GET /audit/events (operation `audit`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mcpctl.core.durations import parse_time_or_ago
from mcpctl.core.errors import InvalidError
from mcpctl.core.policy import ensure_operation
from mcpctl.mcpd import audit
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.schemas import ListOut
from mcpctl.storage import tables

router = APIRouter(prefix="/audit", tags=["audit"])
Short = Annotated[str | None, Query(max_length=320)]


@router.get("/events", response_model=ListOut, summary="Query audit events, newest first")
async def list_events(
    state: State,
    principal: CurrentPrincipal,
    project: Short = None,
    tokenName: Short = None,
    tokenSha: Short = None,
    kind: Short = None,
    user: Short = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    ensure_operation(principal, "audit")
    if kind is not None and kind not in audit.KINDS:
        raise InvalidError(f"unknown audit event kind {kind!r}", details={"kinds": list(audit.KINDS)})
    now = tables.utcnow()
    since_at = parse_time_or_ago(since, now=now) if since else None
    until_at = parse_time_or_ago(until, now=now) if until else None
    async with state.db.read() as session:
        events = await audit.query(
            session,
            project=project,
            token_name=tokenName,
            token_sha=tokenSha,
            kind=kind,
            user=user,
            since=since_at,
            until=until_at,
            limit=limit,
        )
    return {"kind": "List", "items": [audit.to_object(e) for e in events]}
