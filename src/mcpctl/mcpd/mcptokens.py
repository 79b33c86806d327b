"""McpToken service: mint (with the creator ceiling), revoke, delete, and the object shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core import tokens
from mcpctl.core.errors import (
    AlreadyExistsError,
    InvalidError,
    LimitExceededError,
    NotFoundError,
    UnauthenticatedError,
)
from mcpctl.core.policy import Principal, ensure_access, ensure_may_grant, ensure_visible
from mcpctl.core.rbac import Binding, binding_from_dict
from mcpctl.mcpd.auth import definitions_naming, reload_principal
from mcpctl.mcpd.escalation import serialize
from mcpctl.mcpd.kinds.base import iso
from mcpctl.mcpd.settings import Settings
from mcpctl.storage import tables

RBAC_MODES = ("empty", "clone", "bind")
TOKEN_LABEL = "mcpctl.io/mcptoken"


@dataclass(frozen=True)
class MintRequest:
    name: str
    project: str
    description: str | None
    ttl: str | None
    rbac: str | None
    bindings: list[dict[str, Any]] | None


@dataclass(frozen=True)
class Minted:
    token: str
    row: tables.McpToken


def token_file(data_dir: Path, project: str, name: str) -> Path:
    return data_dir / "mcp-tokens" / project / name


def remove_token_file(data_dir: Path, row: tables.McpToken, project: str) -> None:
    """Remove a revoked or deleted token's provisioned file, only if it still holds that token."""
    path = token_file(data_dir, project, row.name)
    try:
        if tokens.token_sha(path.read_text().strip()) == row.token_sha:
            path.unlink()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        pass


def project_not_found(name: str) -> NotFoundError:
    return NotFoundError(f'projects "{name}" not found', details={"kind": "Project", "name": name})


def subject_of(row: tables.McpToken) -> str:
    return f"McpToken:{row.token_sha}"


def resolve_bindings(principal: Principal, request: MintRequest) -> tuple[str, list[Binding]]:
    """The token's mode and bindings; every binding must be held by the creator (the ceiling)."""
    mode = request.rbac or ("bind" if request.bindings else "empty")
    if mode not in RBAC_MODES:
        raise InvalidError(
            f"unknown rbac mode {mode!r} (expected empty, clone or bind)", details={"field": "rbac"}
        )
    if request.bindings and mode != "bind":
        raise InvalidError(f"bindings cannot be combined with rbac {mode!r}", details={"field": "bindings"})
    if mode == "empty":
        return mode, []
    if mode == "clone":
        return mode, list(principal.bindings)
    bindings: list[Binding] = []
    for i, raw in enumerate(request.bindings or []):
        binding = binding_from_dict(raw, where=f"bindings[{i}]")
        if binding not in bindings:
            bindings.append(binding)
    ensure_may_grant(principal, bindings, what="the token")
    return mode, bindings


def _within_parent(principal: Principal, expires_at: datetime | None) -> datetime | None:
    """A token minted by a token never outlives it."""
    parent_expiry = principal.token_expires_at
    if principal.kind != "token" or parent_expiry is None:
        return expires_at
    if expires_at is None or expires_at > parent_expiry:
        raise InvalidError(
            f"a token minted by a token cannot outlive it: ttl must end by {iso(parent_expiry)}",
            details={"field": "ttl", "maxExpiresAt": iso(parent_expiry)},
        )
    return expires_at


async def _free_name(session: AsyncSession, project: tables.Project, name: str, now: datetime) -> None:
    """409 when an active token has the name; an expired one gives its name up."""
    holder = (
        await session.execute(
            sa.select(tables.McpToken).where(
                tables.McpToken.project_id == project.id, tables.McpToken.active_name == name
            )
        )
    ).scalar()
    if holder is None:
        return
    if tokens.status(revoked_at=holder.revoked_at, expires_at=holder.expires_at, now=now) == "active":
        raise AlreadyExistsError(
            f'an active mcptoken "{name}" already exists in project "{project.name}"',
            details={"kind": "McpToken", "name": name, "project": project.name},
        )
    holder.active_name = None
    await session.flush()


async def _check_limit(session: AsyncSession, project: tables.Project, limit: int, now: datetime) -> None:
    active = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(tables.McpToken)
            .where(
                tables.McpToken.project_id == project.id,
                tables.McpToken.revoked_at.is_(None),
                sa.or_(tables.McpToken.expires_at.is_(None), tables.McpToken.expires_at > now),
            )
        )
    ).scalar_one()
    if active >= limit:
        raise LimitExceededError(
            f'project "{project.name}" already has {active} active mcptokens (the limit is {limit}); '
            "revoke one first",
            code="token_limit_exceeded",
            details={"limit": limit},
        )


def _definition_name(project: str, name: str, sha: str) -> str:
    preferred = f"mcptoken-{project}-{name}"
    return preferred if len(preferred) <= 63 else f"mcptoken-{sha[:16]}"


async def mint(
    session: AsyncSession, principal: Principal, settings: Settings, request: MintRequest
) -> Minted:
    """Create a token in `request.project` for `principal`; the raw value is returned once."""
    ensure_visible(principal, "projects", request.project, kind="Project")
    project = (
        await session.execute(sa.select(tables.Project).where(tables.Project.name == request.project))
    ).scalar()
    if project is None:
        raise project_not_found(request.project)
    ensure_access(principal, "create", "mcptokens", request.name)
    await serialize(session)  # no mint slips past a concurrent demotion or deletion of its creator
    principal = await reload_principal(session, principal)
    if not principal.is_authenticated:
        raise UnauthenticatedError("the credentials of this request are no longer valid")
    mode, bindings = resolve_bindings(principal, request)
    now = tables.utcnow()
    expires_at = tokens.parse_ttl(request.ttl, now=now, max_ttl=settings.mcptoken_max_ttl_delta)
    expires_at = _within_parent(principal, expires_at)
    await _free_name(session, project, request.name, now)
    await _check_limit(session, project, settings.max_tokens_per_project, now)
    raw = tokens.generate()
    sha = tokens.token_sha(raw)
    row = tables.McpToken(
        name=request.name,
        active_name=request.name,
        project=project,
        token_sha=sha,
        prefix=tokens.display_prefix(raw),
        owner=principal.owner or principal.email or "",
        description=request.description,
        rbac_mode=mode,
        bindings=[b.to_dict() for b in bindings],
        expires_at=expires_at,
        created_at=now,
        parent_id=principal.token_id,
    )
    session.add(row)
    if bindings:
        definition_name = _definition_name(project.name, request.name, sha)
        taken = (
            await session.execute(
                sa.select(tables.RbacDefinition.id).where(tables.RbacDefinition.name == definition_name)
            )
        ).scalar()
        if taken is not None:
            definition_name = f"mcptoken-{sha[:16]}"
        session.add(
            tables.RbacDefinition(
                name=definition_name,
                labels={TOKEN_LABEL: request.name},
                description=f'bindings of mcptoken "{request.name}" in project "{project.name}"',
                role_bindings=[b.to_dict() for b in bindings],
                subject_rows=[tables.RbacSubject(subject=f"McpToken:{sha}", position=0)],
            )
        )
    await session.flush()
    return Minted(token=raw, row=row)


async def definition_names(session: AsyncSession, row: tables.McpToken) -> list[str]:
    result = await session.execute(
        sa.select(tables.RbacDefinition.name)
        .join(tables.RbacSubject, tables.RbacSubject.definition_id == tables.RbacDefinition.id)
        .where(tables.RbacSubject.subject == subject_of(row))
    )
    return list(result.scalars())


async def drop_definitions(session: AsyncSession, subjects: list[str]) -> None:
    """Take these token subjects out of RBAC: a token's own definition (labelled, with it as the only
    subject) is deleted; any other definition that names the token merely loses that subject."""
    if not subjects:
        return
    rows = await definitions_naming(session, subjects)
    wanted = set(subjects)
    for definition in rows:
        own = TOKEN_LABEL in (definition.labels or {}) and all(
            s.subject in wanted for s in definition.subject_rows
        )
        if own:
            await session.delete(definition)
        else:
            definition.subject_rows = [s for s in definition.subject_rows if s.subject not in wanted]
    await session.flush()


async def descendants(session: AsyncSession, row: tables.McpToken) -> list[tables.McpToken]:
    """Every token minted, directly or not, by `row`."""
    found: list[tables.McpToken] = []
    frontier = [row.id]
    while frontier:
        children = (
            (await session.execute(sa.select(tables.McpToken).where(tables.McpToken.parent_id.in_(frontier))))
            .scalars()
            .all()
        )
        found.extend(children)
        frontier = [child.id for child in children]
    return found


async def revoke(session: AsyncSession, row: tables.McpToken) -> list[tables.McpToken]:
    """Revoke the token and every token it minted (a leaked token's offspring go with it); returns the
    tokens that were active and are revoked now, the token itself first."""
    now = tables.utcnow()
    revoked = []
    for token in [row, *await descendants(session, row)]:
        if token.revoked_at is None:
            token.revoked_at = now
            revoked.append(token)
        token.active_name = None
    await drop_definitions(session, [subject_of(t) for t in revoked or [row]])
    await session.flush()
    return revoked


async def delete(session: AsyncSession, row: tables.McpToken) -> list[tables.McpToken]:
    """Hard-delete the token; the tokens it minted are revoked (and returned)."""
    children = await descendants(session, row)
    revoked = [child for child in children if child.revoked_at is None]
    now = tables.utcnow()
    for child in children:
        child.revoked_at = child.revoked_at or now
        child.active_name = None
    await drop_definitions(session, [subject_of(row), *(subject_of(c) for c in revoked)])
    await session.delete(row)
    await session.flush()
    return revoked


async def to_object(session: AsyncSession, row: tables.McpToken) -> dict[str, Any]:
    now = tables.utcnow()
    names = await definition_names(session, row)
    spec: dict[str, Any] = {"rbac": row.rbac_mode, "bindings": list(row.bindings)}
    if row.description is not None:
        spec["description"] = row.description
    return {
        "kind": "McpToken",
        "metadata": {
            "name": row.name,
            "project": row.project.name,
            "id": row.id,
            "createdAt": iso(row.created_at),
        },
        "spec": spec,
        "status": {
            "status": tokens.status(revoked_at=row.revoked_at, expires_at=row.expires_at, now=now),
            "prefix": row.prefix,
            "tokenSha": row.token_sha,
            "owner": row.owner,
            "expiresAt": iso(row.expires_at) if row.expires_at else None,
            "revokedAt": iso(row.revoked_at) if row.revoked_at else None,
            "lastUsedAt": iso(row.last_used_at) if row.last_used_at else None,
            "rbacDefinition": names[0] if names else None,
        },
    }
