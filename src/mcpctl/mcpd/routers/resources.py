"""The generic REST routes of a kind: list, get, create, replace (apply), merge-patch, delete."""

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal, Optional

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ValidationError, create_model

from mcpctl.core.errors import AlreadyExistsError, InvalidError
from mcpctl.core.names import NAME_RE
from mcpctl.core.policy import Principal, can_access, can_list, ensure_access, ensure_visible
from mcpctl.core.selectors import parse_selector
from mcpctl.mcpd import audit
from mcpctl.mcpd.deps import CurrentPrincipal, State
from mcpctl.mcpd.errors import invalid_document
from mcpctl.mcpd.escalation import guarded
from mcpctl.mcpd.kinds.base import ApplyResult, KindContext, KindHandler
from mcpctl.mcpd.schemas import ListOut, Metadata, MetadataPatch, ObjectOut, Strict
from mcpctl.mcpd.state import AppState

NamePath = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=63)]
DryRun = Annotated[bool, Query(alias="dryRun")]
RESULT_HEADER = "Mcpctl-Result"


class DryRunRollback(Exception):
    """Raised to roll back a dry-run unit of work after computing its answer."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def resource_router(handler: KindHandler[Any, Any]) -> APIRouter:
    info = handler.info
    plural, kind = info.plural, info.kind
    router = APIRouter(prefix=f"/{plural}", tags=[plural])
    body_model: Any = create_model(
        f"{kind}In",
        __base__=Strict,
        kind=(Optional[Literal[kind]], None),  # type: ignore[arg-type]  # noqa: UP045
        metadata=(Metadata, ...),
        spec=(handler.spec_model, ...),
        status=(dict[str, Any] | None, None),
    )
    patch_model: Any = create_model(
        f"{kind}Patch",
        __base__=Strict,
        metadata=(MetadataPatch | None, None),
        spec=(dict[str, Any] | None, None),
    )

    def ctx_for(session: Any, state: AppState, principal: Principal) -> KindContext:
        return state.context(session, principal)

    def _guard(session: Any, principal: Principal, what: str) -> AbstractAsyncContextManager[None]:
        """The escalation rule around a write of a kind that can change what anyone holds."""
        if handler.changes_permissions:
            return guarded(session, principal, what=what)
        return contextlib.nullcontext()

    async def show_values_allowed(principal: Principal, name: str | None, show_values: bool) -> bool:
        if show_values:
            ensure_access(principal, "edit", plural, name)
        return show_values

    @router.get("", response_model=ListOut, summary=f"List {plural}")
    async def list_objects(
        state: State,
        principal: CurrentPrincipal,
        label_selector: Annotated[str | None, Query(alias="labelSelector", max_length=1000)] = None,
        show_values: Annotated[bool, Query(alias="showValues")] = False,
    ) -> Any:
        if not can_list(principal, plural):
            ensure_access(principal, "view", plural)
        matches = parse_selector(label_selector or "")
        await show_values_allowed(principal, None, show_values)
        async with state.db.read() as session:
            ctx = ctx_for(session, state, principal)
            items = [
                await handler.to_object(ctx, row, show_values=show_values)
                for row in await handler.list(session)
                if can_access(principal, "view", plural, row.name) and matches(row.labels or {})
            ]
            for built in handler.built_in_names():
                obj = await handler.built_in(ctx, built)
                if obj is not None and can_access(principal, "view", plural, built) and matches({}):
                    items.append(obj)
        items.sort(key=lambda item: str(item["metadata"]["name"]))
        return {"kind": "List", "items": items}

    @router.get("/{name}", response_model=ObjectOut, summary=f"Get one of {plural}")
    async def get_object(
        name: NamePath,
        state: State,
        principal: CurrentPrincipal,
        show_values: Annotated[bool, Query(alias="showValues")] = False,
    ) -> Any:
        ensure_visible(principal, plural, name, kind=kind)
        await show_values_allowed(principal, name, show_values)
        async with state.db.read() as session:
            ctx = ctx_for(session, state, principal)
            built = await handler.built_in(ctx, name)
            if built is not None:
                return built
            row = await handler.require(session, name)
            return await handler.to_object(ctx, row, show_values=show_values)

    async def _apply(
        request: Request,
        state: AppState,
        principal: Principal,
        name: str,
        body: BaseModel,
        *,
        dry_run: bool,
        create_only: bool,
    ) -> tuple[dict[str, Any], ApplyResult]:
        metadata: Metadata = body.metadata  # type: ignore[attr-defined]
        if metadata.name != name:
            raise InvalidError(f"metadata.name {metadata.name!r} does not match the URL name {name!r}")
        answer: dict[str, Any] = {}
        result: ApplyResult = "unchanged"
        try:
            async with state.db.write() as session:
                visible = can_access(principal, "view", plural, name)
                if not visible:  # decided before the lookup: the answer must not reveal existence
                    ensure_access(principal, "create", plural, name)
                ctx = ctx_for(session, state, principal)
                built = await handler.built_in(ctx, name)
                if built is not None:  # applying it as it is changes nothing; anything else is refused
                    if create_only or not visible or not _same_as_built_in(handler, built, metadata, body):
                        ensure_access(principal, "create" if create_only else "edit", plural, name)
                        raise handler.built_in_refused(name, "created" if create_only else "changed")
                    return built, "unchanged"
                row = await handler.get(session, name)
                if row is None:
                    ensure_access(principal, "create", plural, name)
                elif create_only or not visible:
                    ensure_access(principal, "create", plural, name)
                    raise AlreadyExistsError(
                        f'{plural} "{name}" already exists', details={"kind": kind, "name": name}
                    )
                else:
                    ensure_access(principal, "edit", plural, name)
                async with _guard(session, principal, f"this write of {plural}/{name}"):
                    row, result = await handler.apply(ctx, row, name, dict(metadata.labels), body.spec)  # type: ignore[attr-defined]
                answer = await handler.to_object(ctx, row)
                if result != "unchanged":
                    record_change(session, request, principal, plural, name, result)
                if dry_run:
                    raise DryRunRollback
        except DryRunRollback:
            pass
        else:
            if result != "unchanged":
                committed(state, plural)
        return answer, result

    @router.post("", status_code=201, response_model=ObjectOut, summary=f"Create one of {plural}")
    async def create_object(
        request: Request,
        state: State,
        principal: CurrentPrincipal,
        body: Annotated[body_model, Body()],
        dry_run: DryRun = False,
    ) -> Any:
        name = body.metadata.name  # type: ignore[attr-defined]
        answer, _ = await _apply(request, state, principal, name, body, dry_run=dry_run, create_only=True)
        return answer

    @router.put(
        "/{name}",
        response_model=ObjectOut,
        responses={201: {"model": ObjectOut, "description": "Created"}},
        summary=f"Create or replace one of {plural} (apply)",
    )
    async def replace_object(
        name: NamePath,
        request: Request,
        response: Response,
        state: State,
        principal: CurrentPrincipal,
        body: Annotated[body_model, Body()],
        dry_run: DryRun = False,
    ) -> Any:
        answer, result = await _apply(
            request, state, principal, name, body, dry_run=dry_run, create_only=False
        )
        response.headers[RESULT_HEADER] = result
        response.status_code = 201 if result == "created" else 200
        return answer

    @router.patch("/{name}", response_model=ObjectOut, summary=f"Merge-patch one of {plural}")
    async def patch_object(
        name: NamePath,
        request: Request,
        state: State,
        principal: CurrentPrincipal,
        body: Annotated[patch_model, Body()],
        dry_run: DryRun = False,
    ) -> Any:
        ensure_visible(principal, plural, name, kind=kind)
        ensure_access(principal, "edit", plural, name)
        try:
            async with state.db.write() as session:
                ctx = ctx_for(session, state, principal)
                if name in handler.built_in_names():
                    raise handler.built_in_refused(name, "changed")
                row = await handler.require(session, name)
                current = await handler.to_object(ctx, row, show_values=False)
                spec = merge_patch(current["spec"], body.spec or {})  # type: ignore[attr-defined]
                labels = merge_patch(
                    current["metadata"].get("labels", {}),
                    (body.metadata.labels if body.metadata else None) or {},  # type: ignore[attr-defined]
                )
                document = {"metadata": {"name": name, "labels": labels}, "spec": spec}
                try:
                    parsed: Any = body_model.model_validate(document)
                except ValidationError as exc:
                    raise invalid_document(exc, document) from exc
                async with _guard(session, principal, f"this patch of {plural}/{name}"):
                    row, result = await handler.apply(
                        ctx, row, name, dict(parsed.metadata.labels), parsed.spec
                    )
                answer = await handler.to_object(ctx, row)
                if result != "unchanged":
                    record_change(session, request, principal, plural, name, "patched")
                if dry_run:
                    raise DryRunRollback
        except DryRunRollback:
            pass
        else:
            if result != "unchanged":
                committed(state, plural)
        return answer

    @router.delete("/{name}", status_code=204, summary=f"Delete one of {plural}")
    async def delete_object(
        name: NamePath, request: Request, state: State, principal: CurrentPrincipal, force: bool = False
    ) -> Response:
        ensure_visible(principal, plural, name, kind=kind)
        ensure_access(principal, "delete", plural, name)
        if name in handler.built_in_names():
            raise handler.built_in_refused(name, "deleted")
        async with state.db.write() as session:
            row = await handler.require(session, name)
            ctx = ctx_for(session, state, principal)
            async with _guard(session, principal, f"deleting {plural}/{name}"):
                await handler.delete(ctx, row, force=force)
            record_change(session, request, principal, plural, name, "deleted")
        for task in ctx.after_commit:
            task()
        committed(state, plural)
        return Response(status_code=204)

    return router


def _same_as_built_in(
    handler: KindHandler[Any, Any], built: dict[str, Any], metadata: Any, body: Any
) -> bool:
    """Whether an applied object is the built-in as `get -o yaml` prints it (so it round-trips)."""
    return (
        not metadata.labels
        and getattr(body.spec, "description", None) == built["spec"].get("description")
        and handler.canonical(body.spec) == {k: v for k, v in built["spec"].items() if k != "description"}
    )


def committed(state: AppState, plural: str) -> None:
    """A change is in the database: tell whoever follows it (the supervisor runs servers)."""
    if plural in ("servers", "secrets") and state.supervisor is not None:
        state.supervisor.poke()
    if state.gateway is not None:  # project endpoints: server lists, bindings and users may have changed
        state.gateway.configuration_changed()


def record_change(
    session: Any,
    request: Request,
    principal: Principal,
    plural: str,
    name: str,
    verb: str,
    *,
    project: str | None = None,
) -> None:
    fields = audit.principal_fields(principal)
    if project is not None:  # a project-scoped object's event is the project's
        fields["project"] = project
    audit.record(
        session,
        "resource_changed",
        outcome="ok",
        **fields,
        target=f"{plural}/{name}",
        verb=verb,
        request_id=getattr(request.state, "request_id", None),
        client_addr=audit.client_addr(request),
    )
