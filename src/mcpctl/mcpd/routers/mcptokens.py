"""McpToken routes: mint, list, get, revoke, delete (by id or by project/name), and introspect."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.clientconfig import client_config, installed_mcplocal
from mcpctl.core.errors import NotFoundError
from mcpctl.core.policy import Principal, can_access, can_list, ensure_access, ensure_visible
from mcpctl.mcpd import audit, mcptokens
from mcpctl.mcpd.auth import introspection
from mcpctl.mcpd.deps import CurrentPrincipal, State, auth_result
from mcpctl.mcpd.files import write_private_file
from mcpctl.mcpd.routers.resources import NamePath
from mcpctl.mcpd.schemas import Description, ListOut, Name, ObjectOut, RoleBindingIn, Strict
from mcpctl.mcpd.state import AppState
from mcpctl.storage import tables

router = APIRouter(tags=["mcptokens"])
IdPath = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class MintBody(Strict):
    name: Name
    description: Description | None = None
    ttl: Annotated[str, StringConstraints(max_length=64)] | None = None
    rbac: Literal["empty", "clone", "bind"] | None = None
    bindings: list[RoleBindingIn] | None = Field(None, max_length=1000)
    writeFile: bool = False
    client: Annotated[str, StringConstraints(max_length=32)] | None = (
        None  # accepted; every snippet is returned
    )


class MintIn(MintBody):
    project: Name


class MintOut(BaseModel):
    token: str
    tokenPath: str | None = None
    clientConfig: dict[str, Any]
    mcpToken: ObjectOut


class IntrospectOut(BaseModel):
    ok: bool
    reason: Literal["malformed", "unknown", "revoked", "expired"] | None = None
    tokenName: str | None = None
    tokenSha: str | None = None
    project: str | None = None
    owner: str | None = None
    expiresAt: str | None = None
    bindings: list[dict[str, str]] | None = None
    # The servers of the project this token may use through MCP now (DESIGN §4 tool scoping).
    reach: list[str] | None = None


def _event_fields(request: Request, principal: Principal, row: tables.McpToken) -> dict[str, Any]:
    fields = audit.principal_fields(principal)
    fields.update(
        token_name=row.name,
        token_sha=row.token_sha,
        project=row.project.name,
        target=f"mcptokens/{row.name}",
        request_id=getattr(request.state, "request_id", None),
        client_addr=audit.client_addr(request),
    )
    return fields


@router.get(
    "/mcptokens/introspect",
    response_model=IntrospectOut,
    response_model_exclude_unset=True,
    summary="Validate the bearer this request carries (no other authentication)",
)
async def introspect(request: Request) -> Any:
    result = auth_result(request)
    principal = result.principal
    if principal.kind != "token":
        reason = (
            result.error if result.error in ("malformed", "unknown", "revoked", "expired") else "malformed"
        )
        return {"ok": False, "reason": reason}
    return introspection(principal, result.expires_at)


async def _mint(request: Request, state: AppState, principal: Principal, project: str, body: MintBody) -> Any:
    mint_request = mcptokens.MintRequest(
        name=body.name,
        project=project,
        description=body.description,
        ttl=body.ttl,
        rbac=body.rbac,
        bindings=[b.model_dump(exclude_none=True) for b in body.bindings]
        if body.bindings is not None
        else None,
    )
    async with state.db.write() as session:
        minted = await mcptokens.mint(session, principal, state.settings, mint_request)
        token_path = None
        if body.writeFile:
            path = mcptokens.token_file(state.settings.data_dir, project, body.name)
            write_private_file(path, minted.token + "\n")
            token_path = str(path)
        audit.record(session, "token_created", outcome="ok", **_event_fields(request, principal, minted.row))
        obj = await mcptokens.to_object(session, minted.row)
    config = client_config(
        project=project,
        token=minted.token,
        public_url=state.settings.resolved_public_url,
        token_path=token_path,
        mcplocal_command=installed_mcplocal()
        or "mcplocal",  # this install's: right when the client runs here
    )
    return {"token": minted.token, "tokenPath": token_path, "clientConfig": config, "mcpToken": obj}


@router.post("/mcptokens", status_code=201, response_model=MintOut, summary="Mint a project token")
async def mint_token(body: MintIn, request: Request, state: State, principal: CurrentPrincipal) -> Any:
    return await _mint(request, state, principal, body.project, body)


@router.post(
    "/projects/{project}/mcptokens",
    status_code=201,
    response_model=MintOut,
    summary="Mint a token in this project",
)
async def mint_project_token(
    project: NamePath, body: MintBody, request: Request, state: State, principal: CurrentPrincipal
) -> Any:
    return await _mint(request, state, principal, project, body)


def _visible(principal: Principal, row: tables.McpToken) -> bool:
    return can_access(principal, "view", "projects", row.project.name) and can_access(
        principal, "view", "mcptokens", row.name
    )


async def _list(session: AsyncSession, principal: Principal, project: str | None) -> list[dict[str, Any]]:
    if project is not None:
        ensure_visible(principal, "projects", project, kind="Project")
        found = await session.execute(sa.select(tables.Project.id).where(tables.Project.name == project))
        if found.scalar() is None:
            raise mcptokens.project_not_found(project)
    if not can_list(principal, "mcptokens"):
        ensure_access(principal, "view", "mcptokens")
    stmt = (
        sa.select(tables.McpToken)
        .join(tables.Project)
        .order_by(tables.McpToken.created_at.desc(), tables.McpToken.id)
    )
    if project is not None:
        stmt = stmt.where(tables.Project.name == project)
    rows = (await session.execute(stmt)).scalars().all()
    return [await mcptokens.to_object(session, row) for row in rows if _visible(principal, row)]


@router.get("/mcptokens", response_model=ListOut, summary="List tokens, newest first")
async def list_tokens(
    state: State, principal: CurrentPrincipal, project: Annotated[str | None, Query(max_length=63)] = None
) -> Any:
    async with state.db.read() as session:
        return {"kind": "List", "items": await _list(session, principal, project)}


@router.get("/projects/{project}/mcptokens", response_model=ListOut, summary="List this project's tokens")
async def list_project_tokens(project: NamePath, state: State, principal: CurrentPrincipal) -> Any:
    async with state.db.read() as session:
        return {"kind": "List", "items": await _list(session, principal, project)}


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(f'mcptokens "{name}" not found', details={"kind": "McpToken", "name": name})


async def _by_id(session: AsyncSession, principal: Principal, token_id: str) -> tables.McpToken:
    row = (await session.execute(sa.select(tables.McpToken).where(tables.McpToken.id == token_id))).scalar()
    if row is None or not _visible(principal, row):
        raise _not_found(token_id)
    return row


async def _by_name(session: AsyncSession, principal: Principal, project: str, name: str) -> tables.McpToken:
    ensure_visible(principal, "projects", project, kind="Project")
    ensure_visible(principal, "mcptokens", name, kind="McpToken")
    row = (
        await session.execute(
            sa.select(tables.McpToken)
            .join(tables.Project)
            .where(tables.Project.name == project, tables.McpToken.name == name)
            .order_by(tables.McpToken.active_name.is_(None), tables.McpToken.created_at.desc())
            .limit(1)
        )
    ).scalar()
    if row is None:
        raise _not_found(name)
    return row


@router.get("/mcptokens/{token_id}", response_model=ObjectOut, summary="Get a token by id")
async def get_token(token_id: IdPath, state: State, principal: CurrentPrincipal) -> Any:
    async with state.db.read() as session:
        return await mcptokens.to_object(session, await _by_id(session, principal, token_id))


@router.get(
    "/projects/{project}/mcptokens/{name}",
    response_model=ObjectOut,
    summary="Get a token by name (the active one, else the newest)",
)
async def get_project_token(
    project: NamePath, name: NamePath, state: State, principal: CurrentPrincipal
) -> Any:
    async with state.db.read() as session:
        return await mcptokens.to_object(session, await _by_name(session, principal, project, name))


def _remove_token_file(state: AppState, row: tables.McpToken) -> None:
    mcptokens.remove_token_file(state.settings.data_dir, row, row.project.name)


async def _revoke(request: Request, state: AppState, principal: Principal, lookup: Any) -> Any:
    async with state.db.write() as session:
        row = await lookup(session)
        ensure_access(principal, "delete", "mcptokens", row.name)
        revoked = await mcptokens.revoke(session, row)
        for token in revoked or [row]:
            audit.record(session, "token_revoked", outcome="ok", **_event_fields(request, principal, token))
        answer = await mcptokens.to_object(session, row)
    for token in revoked:  # after the commit: a failed revocation keeps its file
        _remove_token_file(state, token)
    state.tokens_ended([token.token_sha for token in [row, *revoked]])  # its sessions and streams end
    return answer


async def _delete(request: Request, state: AppState, principal: Principal, lookup: Any) -> Response:
    async with state.db.write() as session:
        row = await lookup(session)
        ensure_access(principal, "delete", "mcptokens", row.name)
        audit.record(session, "token_deleted", outcome="ok", **_event_fields(request, principal, row))
        revoked = await mcptokens.delete(session, row)
        for token in revoked:
            audit.record(session, "token_revoked", outcome="ok", **_event_fields(request, principal, token))
    for token in [row, *revoked]:
        _remove_token_file(state, token)
    state.tokens_ended([token.token_sha for token in [row, *revoked]])
    return Response(status_code=204)


@router.post("/mcptokens/{token_id}/revoke", response_model=ObjectOut, summary="Revoke a token (soft)")
async def revoke_token(token_id: IdPath, request: Request, state: State, principal: CurrentPrincipal) -> Any:
    return await _revoke(request, state, principal, lambda s: _by_id(s, principal, token_id))


@router.post(
    "/projects/{project}/mcptokens/{name}/revoke",
    response_model=ObjectOut,
    summary="Revoke a token by name (soft)",
)
async def revoke_project_token(
    project: NamePath, name: NamePath, request: Request, state: State, principal: CurrentPrincipal
) -> Any:
    return await _revoke(request, state, principal, lambda s: _by_name(s, principal, project, name))


@router.delete("/mcptokens/{token_id}", status_code=204, summary="Delete a token (hard)")
async def delete_token(
    token_id: IdPath, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    return await _delete(request, state, principal, lambda s: _by_id(s, principal, token_id))


@router.delete(
    "/projects/{project}/mcptokens/{name}", status_code=204, summary="Delete a token by name (hard)"
)
async def delete_project_token(
    project: NamePath, name: NamePath, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    return await _delete(request, state, principal, lambda s: _by_name(s, principal, project, name))
