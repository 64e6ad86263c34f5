"""Liveness, readiness and metrics: the operator's endpoints."""

from __future__ import annotations

import hmac

from fastapi import Request, Response
from pydantic import BaseModel

from xfchat.api.errors import error_response
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.errors import NotFound, Unauthorized
from xfchat.settings import Settings

router = api_router(tags=["operations"])


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
    readiness = await state.readiness()
    if not readiness.ready:
        return error_response(503, "NOT_READY", readiness.reason)
    if state.hub is not None and not state.hub.listening.is_set():
        return error_response(503, "NOT_READY", "the real-time listener is reconnecting")
    return JSONResponse({"status": "ready"})


METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def check_metrics_token(settings: Settings, authorization: str | None) -> None:
    """/metrics on the public listener: only with XFCHAT_METRICS_TOKEN, and only for
    whoever presents it (XFCHAT_METRICS_ADDR serves it on a listener of its own).

    Raises: NotFound without a token configured; Unauthorized for a wrong one."""
    if settings.metrics_token is None:
        raise NotFound(
            "no such route (metrics are served on XFCHAT_METRICS_ADDR, or here with "
            "XFCHAT_METRICS_TOKEN, if set)"
        )
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.metrics_token.get_secret_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise Unauthorized("metrics need Authorization: Bearer <XFCHAT_METRICS_TOKEN>")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Only with `Authorization: Bearer <XFCHAT_METRICS_TOKEN>` when that is "
    "set (not the access token of a user); otherwise 404 here, and served on "
    "XFCHAT_METRICS_ADDR, a listener of its own, when that is set.",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "A wrong or missing metrics token"},
        404: {"description": "No metrics token is configured"},
    },
)
async def get_metrics(request: Request) -> Response:
    check_metrics_token(request.app.state.settings, request.headers.get("authorization"))
    return Response(request.app.state.metrics.render(), media_type=METRICS_TYPE)
