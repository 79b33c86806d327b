"""McpToken service: mint (with the creator ceiling), revoke, delete, and the object shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core import tokens
from mcpctl.core.errors import (
    AlreadyExistsError,
    ForbiddenError,
    InvalidError,
    LimitExceededError,
    NotFoundError,
)
from mcpctl.core.policy import Principal, covers, describe, ensure_access, ensure_visible
from mcpctl.core.rbac import Binding, binding_from_dict
from mcpctl.mcpd.kinds.base import iso
from mcpctl.mcpd.settings import Settings
from mcpctl.storage import tables

RBAC_MODES = ("empty", "clone", "bind")


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
    for binding in bindings:
        if not covers(principal, binding):
            raise ForbiddenError(
                f"binding {binding} exceeds the permissions of {describe(principal)}",
                details={"binding": str(binding)},
            )
    return mode, bindings


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
    mode, bindings = resolve_bindings(principal, request)
    now = tables.utcnow()
    expires_at = tokens.parse_ttl(request.ttl, now=now, max_ttl=settings.mcptoken_max_ttl_delta)
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
                labels={"mcpctl.io/mcptoken": request.name},
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
    """Delete the RbacDefinitions that exist for these token subjects."""
    if not subjects:
        return
    ids = (
        (
            await session.execute(
                sa.select(tables.RbacSubject.definition_id).where(tables.RbacSubject.subject.in_(subjects))
            )
        )
        .scalars()
        .all()
    )
    if ids:
        await session.execute(sa.delete(tables.RbacSubject).where(tables.RbacSubject.definition_id.in_(ids)))
        await session.execute(sa.delete(tables.RbacDefinition).where(tables.RbacDefinition.id.in_(ids)))


async def revoke(session: AsyncSession, row: tables.McpToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = tables.utcnow()
    row.active_name = None
    await drop_definitions(session, [subject_of(row)])
    await session.flush()


async def delete(session: AsyncSession, row: tables.McpToken) -> None:
    await drop_definitions(session, [subject_of(row)])
    await session.delete(row)
    await session.flush()


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
