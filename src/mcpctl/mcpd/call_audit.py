"""AuditEvents of the MCP calls mcpd forwards for others: the per-server proxy's and the data-plane
link's (split-mode mcplocal's calls are audited here, where the database is, so a token cannot write
audit rows of its own making)."""

from __future__ import annotations

from typing import Any

from mcp_types import INVALID_PARAMS

from mcpctl.core.policy import Principal
from mcpctl.mcplocal.ports import AuditRecord

# method → (AuditEvent kind, the params field that names the target)
AUDITED = {
    "tools/call": ("tool_call", "name"),
    "resources/read": ("resource_read", "uri"),
    "prompts/get": ("prompt_get", "name"),
}


def outcome_of(answer: dict[str, Any] | None) -> str:
    """`ok`, `error` (an error answer, `isError`, or no answer) or `denied` (an unknown name)."""
    if answer is None:
        return "error"
    if "error" in answer:
        return "denied" if (answer.get("error") or {}).get("code") == INVALID_PARAMS else "error"
    result = answer.get("result")
    return "error" if isinstance(result, dict) and result.get("isError") else "ok"


def downstream_session(principal: Principal, named: str | None) -> str | None:
    """The downstream session split-mode mcplocal names, as the audit rows keep it: under the caller's
    own namespace (a token's hash prefix, a user's id), so no caller can stamp its rows with a session
    id another caller's rows carry."""
    if not named:
        return None
    owner = (
        principal.token_sha[:16] if principal.kind == "token" and principal.token_sha else principal.user_id
    )
    return f"{owner or 'anonymous'}/{named}"[:128]


def call_record(
    method: str,
    params: dict[str, Any] | None,
    principal: Principal,
    *,
    project: str | None,
    server: str,
    outcome: str,
    seconds: float,
    session_id: str | None,
    request_id: str | None,
    client_addr: str | None,
) -> AuditRecord | None:
    """The AuditEvent of one forwarded request, or None when its method is not audited."""
    audited = AUDITED.get(method)
    if audited is None:
        return None
    kind, field = audited
    return AuditRecord(
        kind,
        principal,
        project or principal.project,
        server,
        str((params or {}).get(field, ""))[:500],
        outcome,
        int(seconds * 1000),
        session_id[:128] if session_id else None,
        request_id,
        client_addr,
    )
