"""Operational endpoints: /healthz, /readyz, /metrics (authenticated: see docs/api.md, Operations)."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import JSONResponse, Response

from mcpctl.core.errors import ForbiddenError
from mcpctl.core.policy import describe, ensure_access
from mcpctl.mcpd import datadir
from mcpctl.mcpd.auth import bearer_from_header
from mcpctl.mcpd.deps import State, authenticated
from mcpctl.mcpd.schemas import ErrorOut
from mcpctl.mcpd.state import AppState

logger = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers and the data dir has room to write (Redis, when configured, is reported "
    "but does not decide)",
)
async def readyz(state: State) -> Response:
    redis = _redis(state)
    try:
        await state.db.ping()
    except Exception:
        logger.warning("readiness check failed: database unreachable", exc_info=True)
        return JSONResponse({"status": "unavailable", "database": "unreachable", **redis}, status_code=503)
    if _storage_full(state):
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "storage": "full", **redis}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok", "storage": "ok", **redis})


def _redis(state: AppState) -> dict[str, str]:
    """Whether cross-replica invalidation is live: without Redis replicas serve on their TTLs, so it is
    detail, not a reason to take this replica out of rotation."""
    bus = state.gateway.bus if state.gateway is not None else None
    if bus is None:
        return {}
    return {"redis": "ok" if bus.connected else "unreachable"}


def _storage_full(state: AppState) -> bool:
    """A database write failed for lack of space lately, or the data dir is below its reserve."""
    if state.db.out_of_space():
        return True
    try:
        free = datadir.free_bytes(state.settings.data_dir)
    except OSError:
        return False  # no data dir to measure (e.g. removed under a PostgreSQL mcpd): not a disk verdict
    return free < state.settings.data_dir_min_free_bytes


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        401: {"model": ErrorOut, "description": "No bearer, or a wrong one"},
        403: {"model": ErrorOut, "description": "The caller may not view every server"},
    },
)
async def metrics(request: Request, state: State) -> Response:
    """Everything for the metrics token or a user who may view every server (the metrics name them
    all); with `metrics_public`, the HTTP request metrics for anyone else."""
    return Response(generate_latest(_registry_for(request, state)), media_type=CONTENT_TYPE_LATEST)


def _registry_for(request: Request, state: AppState) -> CollectorRegistry:
    expected = state.settings.metrics_token
    bearer = bearer_from_header(request.headers.get("authorization"))
    if (
        expected is not None
        and bearer
        and hmac.compare_digest(bearer.encode(), expected.get_secret_value().encode())
    ):
        return state.metrics.registry
    if state.settings.metrics_public and not bearer:
        return state.metrics.public
    principal = authenticated(request)
    if principal.kind == "token":
        raise ForbiddenError(f"{describe(principal)} may only be used under its project's paths")
    ensure_access(principal, "view", "servers")
    return state.metrics.registry
