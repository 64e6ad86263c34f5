"""A server's roles: make, change, reorder, delete."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Body, Response
from pydantic import BaseModel, Field, StrictBool, StrictInt

from xfchat.api.deps import Conn, CurrentActor
from xfchat.api.models import PositionIn, Text, enforced, positions_of
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.domain import roles
from xfchat.domain.event_payloads import RolePayload

router = api_router(prefix="/api/servers/{server_id}/roles", tags=["roles"])


class RoleIn(BaseModel):
    """permissions: the bit flags as a decimal string (see the README's table). Only the
    fields present change on PATCH."""

    name: Text | None = Field(
        default=None, max_length=1024, json_schema_extra=enforced(roles.MAX_ROLE_NAME, 1)
    )
    permissions: Text | None = Field(default=None, max_length=32)
    color: StrictInt | None = None
    hoist: StrictBool | None = None
    mentionable: StrictBool | None = None


@router.get("", response_model=list[RolePayload])
async def get_roles(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The server's roles, highest first (@everyone last)."""
    return JSONResponse(await roles.list_roles(conn, actor, server_id))


@router.post("", status_code=201, response_model=RolePayload)
async def post_role(
    server_id: UUID, body: RoleIn, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """A new role just above @everyone (MANAGE_ROLES; only permissions you hold)."""
    made = await roles.create_role(
        conn, actor, server_id, fields=body.model_dump(exclude_unset=True), reason=reason
    )
    return JSONResponse(made, status_code=201)


@router.patch("", response_model=list[RolePayload])
async def patch_roles(
    server_id: UUID,
    body: Annotated[list[PositionIn], Body(max_length=250)],
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    """Move several roles at once: [{"id", "position"}, ...]; every role, highest first."""
    positions = positions_of(body)
    return JSONResponse(await roles.reorder_roles(conn, actor, server_id, positions, reason))


@router.patch("/{role_id}", response_model=RolePayload)
async def patch_role(
    server_id: UUID,
    role_id: UUID,
    body: RoleIn,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    fields = body.model_dump(exclude_unset=True)
    return JSONResponse(
        await roles.update_role(conn, actor, server_id, role_id, fields=fields, reason=reason)
    )


@router.delete("/{role_id}", status_code=204, response_class=Response)
async def delete_role(
    server_id: UUID, role_id: UUID, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    await roles.delete_role(conn, actor, server_id, role_id, reason)
    return Response(status_code=204)
