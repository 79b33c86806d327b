"""Prompt routes (DESIGN §2, §8): project-scoped like McpTokens — listed under /prompts[?project=]
and /projects/{p}/prompts, addressed by name under /projects/{p}/prompts/{name}.

Authorization is the tokens' rule: an object is visible with `view` on its project and on
`prompts`/<name> (else 404); writes need `create`/`edit`/`delete` on `prompts`. Writes are audited
(`resource_changed`, with the project) and reach open project endpoints like other changes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.errors import AlreadyExistsError, InvalidError, NotFoundError
from mcpctl.core.policy import Principal, can_access, can_list, ensure_access, ensure_visible
from mcpctl.core.selectors import parse_selector
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.errors import invalid_document
from mcpctl.mcpd.kinds.base import ApplyResult
from mcpctl.mcpd.kinds.prompts import PromptHandler
from mcpctl.mcpd.routers.resources import (
    RESULT_HEADER,
    DryRunRollback,
    NamePath,
    committed,
    merge_patch,
    record_change,
)
from mcpctl.mcpd.schemas import ListOut, Metadata, MetadataPatch, Name, ObjectOut, PromptSpec, Strict
from mcpctl.mcpd.state import AppState
from mcpctl.storage import tables

router = APIRouter(tags=["prompts"])
_prompts = PromptHandler()
PLURAL, KIND = "prompts", "Prompt"
DryRunQuery = Annotated[bool, Query(alias="dryRun")]


class PromptMetadata(Metadata):
    # Read back by `get -o yaml`; when given it must be the project of the URL.
    project: Name | None = None


class PromptIn(Strict):
    kind: Literal["Prompt"] | None = None
    metadata: PromptMetadata
    spec: PromptSpec
    status: dict[str, Any] | None = None


class PromptPatch(Strict):
    metadata: MetadataPatch | None = None
    spec: dict[str, Any] | None = None


def _not_found(name: str) -> NotFoundError:
    return _prompts.not_found(name)


async def _project(session: AsyncSession, principal: Principal, project: str) -> tables.Project:
    ensure_visible(principal, "projects", project, kind="Project")
    row = (await session.execute(sa.select(tables.Project).where(tables.Project.name == project))).scalar()
    if row is None:
        raise NotFoundError(f'projects "{project}" not found', details={"kind": "Project", "name": project})
    return row


def _ensure_project_editable(principal: Principal, project: str) -> None:
    """A prompt is delivered verbatim to every agent of its project: writing one is editing what the
    project serves, like adding a server to it, so it takes `edit` on the project as well (after
    the project's visibility: 404 first)."""
    ensure_visible(principal, "projects", project, kind="Project")
    ensure_access(principal, "edit", "projects", project)


def _ensure_visible(principal: Principal, project: str, name: str) -> None:
    """404 before 403: a prompt is seen through its project."""
    ensure_visible(principal, "projects", project, kind="Project")
    ensure_visible(principal, PLURAL, name, kind=KIND)


def _visible(principal: Principal, row: tables.Prompt) -> bool:
    return can_access(principal, "view", "projects", row.project.name) and can_access(
        principal, "view", PLURAL, row.name
    )


async def _list(
    state: AppState, principal: Principal, project: str | None, selector: str | None
) -> dict[str, Any]:
    matches = parse_selector(selector or "")
    async with state.db.read() as session:
        project_row = await _project(session, principal, project) if project is not None else None
        if not can_list(principal, PLURAL):
            ensure_access(principal, "view", PLURAL)
        ctx = state.context(session, principal)
        items = [
            await _prompts.to_object(ctx, row)
            for row in await _prompts.list_in(session, project_row)
            if _visible(principal, row) and matches(row.labels or {})
        ]
    return {"kind": "List", "items": items}


@router.get("/prompts", response_model=ListOut, summary="List prompts (of every project, or of one)")
async def list_prompts(
    state: State,
    principal: CurrentPrincipal,
    project: Annotated[str | None, Query(max_length=63)] = None,
    label_selector: Annotated[str | None, Query(alias="labelSelector", max_length=1000)] = None,
) -> Any:
    return await _list(state, principal, project, label_selector)


@router.get("/projects/{project}/prompts", response_model=ListOut, summary="List this project's prompts")
async def list_project_prompts(
    project: NamePath,
    state: State,
    principal: CurrentPrincipal,
    label_selector: Annotated[str | None, Query(alias="labelSelector", max_length=1000)] = None,
) -> Any:
    return await _list(state, principal, project, label_selector)


@router.get("/projects/{project}/prompts/{name}", response_model=ObjectOut, summary="Get a prompt")
async def get_prompt(project: NamePath, name: NamePath, state: State, principal: CurrentPrincipal) -> Any:
    _ensure_visible(principal, project, name)
    async with state.db.read() as session:
        project_row = await _project(session, principal, project)
        row = await _prompts.get_in(session, project_row, name)
        if row is None:
            raise _not_found(name)
        return await _prompts.to_object(state.context(session, principal), row)


async def _apply(
    request: Request,
    state: AppState,
    principal: Principal,
    project: str,
    name: str,
    body: PromptIn,
    *,
    dry_run: bool,
    create_only: bool,
) -> tuple[dict[str, Any], ApplyResult]:
    metadata = body.metadata
    if metadata.name != name:
        raise InvalidError(f"metadata.name {metadata.name!r} does not match the URL name {name!r}")
    if metadata.project not in (None, project):
        raise InvalidError(
            f"metadata.project {metadata.project!r} does not match the URL project {project!r}"
        )
    answer: dict[str, Any] = {}
    result: ApplyResult = "unchanged"
    _ensure_project_editable(principal, project)
    try:
        async with state.db.write() as session:
            project_row = await _project(session, principal, project)
            visible = can_access(principal, "view", PLURAL, name)
            if not visible:  # decided before the lookup: the answer must not reveal existence
                ensure_access(principal, "create", PLURAL, name)
            row = await _prompts.get_in(session, project_row, name)
            if row is None:
                ensure_access(principal, "create", PLURAL, name)
            elif create_only or not visible:
                ensure_access(principal, "create", PLURAL, name)
                raise AlreadyExistsError(
                    f'prompts "{name}" already exists in project "{project}"',
                    details={"kind": KIND, "name": name, "project": project},
                )
            else:
                ensure_access(principal, "edit", PLURAL, name)
            ctx = state.context(session, principal)
            ctx.project = project_row
            row, result = await _prompts.apply(ctx, row, name, dict(metadata.labels), body.spec)
            answer = await _prompts.to_object(ctx, row)
            if result != "unchanged":
                record_change(session, request, principal, PLURAL, name, result, project=project)
            if dry_run:
                raise DryRunRollback
    except DryRunRollback:
        pass
    else:
        if result != "unchanged":
            committed(state, PLURAL)
    return answer, result


@router.post(
    "/projects/{project}/prompts", status_code=201, response_model=ObjectOut, summary="Create a prompt"
)
async def create_prompt(
    project: NamePath,
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    body: Annotated[PromptIn, Body()],
    dry_run: DryRunQuery = False,
) -> Any:
    name = body.metadata.name
    answer, _ = await _apply(
        request, state, principal, project, name, body, dry_run=dry_run, create_only=True
    )
    return answer


@router.put(
    "/projects/{project}/prompts/{name}",
    response_model=ObjectOut,
    responses={201: {"model": ObjectOut, "description": "Created"}},
    summary="Create or replace a prompt (apply)",
)
async def replace_prompt(
    project: NamePath,
    name: NamePath,
    request: Request,
    response: Response,
    state: State,
    principal: CurrentPrincipal,
    body: Annotated[PromptIn, Body()],
    dry_run: DryRunQuery = False,
) -> Any:
    answer, result = await _apply(
        request, state, principal, project, name, body, dry_run=dry_run, create_only=False
    )
    response.headers[RESULT_HEADER] = result
    response.status_code = 201 if result == "created" else 200
    return answer


@router.patch("/projects/{project}/prompts/{name}", response_model=ObjectOut, summary="Merge-patch a prompt")
async def patch_prompt(
    project: NamePath,
    name: NamePath,
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    body: Annotated[PromptPatch, Body()],
    dry_run: DryRunQuery = False,
) -> Any:
    _ensure_visible(principal, project, name)
    _ensure_project_editable(principal, project)
    ensure_access(principal, "edit", PLURAL, name)
    result: ApplyResult = "unchanged"
    try:
        async with state.db.write() as session:
            project_row = await _project(session, principal, project)
            row = await _prompts.get_in(session, project_row, name)
            if row is None:
                raise _not_found(name)
            ctx = state.context(session, principal)
            current = await _prompts.to_object(ctx, row)
            spec = merge_patch(current["spec"], body.spec or {})
            labels = merge_patch(
                current["metadata"].get("labels", {}), (body.metadata.labels if body.metadata else None) or {}
            )
            document = {"metadata": {"name": name, "labels": labels}, "spec": spec}
            try:
                parsed = PromptIn.model_validate(document)
            except ValidationError as exc:
                raise invalid_document(exc, document) from exc
            row, result = await _prompts.apply(ctx, row, name, dict(parsed.metadata.labels), parsed.spec)
            answer = await _prompts.to_object(ctx, row)
            if result != "unchanged":
                record_change(session, request, principal, PLURAL, name, "patched", project=project)
            if dry_run:
                raise DryRunRollback
    except DryRunRollback:
        pass
    else:
        if result != "unchanged":
            committed(state, PLURAL)
    return answer


@router.delete("/projects/{project}/prompts/{name}", status_code=204, summary="Delete a prompt")
async def delete_prompt(
    project: NamePath, name: NamePath, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    _ensure_visible(principal, project, name)
    _ensure_project_editable(principal, project)
    ensure_access(principal, "delete", PLURAL, name)
    async with state.db.write() as session:
        project_row = await _project(session, principal, project)
        row = await _prompts.get_in(session, project_row, name)
        if row is None:
            raise _not_found(name)
        await _prompts.delete(state.context(session, principal), row, force=False)
        record_change(session, request, principal, PLURAL, name, "deleted", project=project)
    committed(state, PLURAL)
    return Response(status_code=204)
