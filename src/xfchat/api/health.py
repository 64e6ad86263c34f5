"""Liveness, readiness and metrics: the operator's endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from xfchat.api.errors import error_response
from xfchat.api.responses import JSONResponse
from xfchat.domain.health import check_ready

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: str


@router.get("/health", summary="The process is alive (does not touch the database)")
async def get_health() -> Status:
    return Status(status="ok")


@router.get(
    "/ready", summary="The database answers and the schema is current", response_model=Status
)
async def get_ready(request: Request) -> JSONResponse:
    state = request.app.state
    readiness = await check_ready(state.pool, state.expected_migrations)
    if not readiness.ready:
        return error_response(503, "NOT_READY", readiness.reason)
    if state.hub is not None and not state.hub.listening.is_set():
        return error_response(503, "NOT_READY", "the real-time listener is reconnecting")
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_metrics(request: Request) -> Response:
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
