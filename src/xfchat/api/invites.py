"""Invites: make, list and revoke them in a server; preview and join by code."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Path, Response
from pydantic import BaseModel, StrictInt

from xfchat.api.deps import Conn, CurrentActor, counted_actor
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.domain import invites
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import ServerJoinedPayload
from xfchat.domain.invites import InvitePayload, InvitePreview

router = api_router(tags=["invites"])
Code = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{6,32}$")]
# Each invite made is an audit-log entry of its server, made by any member.
InvitingActor = Annotated[Actor, Depends(counted_actor("invites"))]
# Each join tells every member and writes the server as the newcomer sees it.
JoiningActor = Annotated[Actor, Depends(counted_actor("joins"))]


class InviteIn(BaseModel):
    """max_uses: 1-1000 joins, null (the default) for no limit; max_age_s: 1 s to 30
    days, null for no expiry (default: one day). Numbers only: true or "5" counts nothing."""

    max_uses: StrictInt | None = None
    max_age_s: StrictInt | None = 86400


@router.post("/api/servers/{server_id}/invites", status_code=201, response_model=InvitePayload)
async def post_invite(
    server_id: UUID, body: InviteIn, actor: InvitingActor, conn: Conn, reason: AuditReason
) -> Response:
    """Make an invite (CREATE_INVITE; counted in `invites`)."""
    made = await invites.create_invite(
        conn, actor, server_id, max_uses=body.max_uses, max_age_s=body.max_age_s, reason=reason
    )
    return JSONResponse(made, status_code=201)


@router.get("/api/servers/{server_id}/invites", response_model=list[InvitePayload])
async def get_invites(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The server's invites, newest first (MANAGE_SERVER)."""
    return JSONResponse(await invites.list_invites(conn, actor, server_id))


@router.delete("/api/servers/{server_id}/invites/{code}", status_code=204, response_class=Response)
async def delete_invite(
    server_id: UUID, code: Code, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """Revoke an invite (its creator, or MANAGE_SERVER)."""
    await invites.revoke_invite(conn, actor, server_id, code, reason)
    return Response(status_code=204)


@router.get("/api/invites/{code}", response_model=InvitePreview)
async def get_invite(code: Code, actor: CurrentActor, conn: Conn) -> Response:
    """Where an invite leads, without joining: the server's name and member count."""
    return JSONResponse(await invites.preview_invite(conn, code))


@router.post(
    "/api/invites/{code}",
    status_code=201,
    response_model=ServerJoinedPayload,
    responses={200: {"model": ServerJoinedPayload, "description": "You were a member already"}},
)
async def post_invite_join(code: Code, actor: JoiningActor, conn: Conn) -> Response:
    """Join the server (201; 200 if you were a member already; counted in `joins`)."""
    joined, new = await invites.join_by_invite(conn, actor, code)
    return JSONResponse(joined, status_code=201 if new else 200)
