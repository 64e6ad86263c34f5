"""The current user's mutes of channels, conversations and servers."""

from __future__ import annotations

from uuid import UUID

from fastapi import Response
from pydantic import BaseModel, Field

from xfchat.api.deps import Conn, CurrentActor
from xfchat.api.models import IsoTime
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import mutes
from xfchat.domain.event_payloads import MutePayload

router = api_router(prefix="/api/users/@me/mutes", tags=["users"])


class MuteIn(BaseModel):
    until: IsoTime | None = Field(
        description=(
            "when the mute ends: an ISO 8601 time with a zone, in the future and at most"
            " 30 days ahead; null: until you unmute"
        ),
    )


@router.get("", response_model=list[MutePayload])
async def get_mutes(actor: CurrentActor, conn: Conn) -> Response:
    """Your mutes in force (at most 1,000), in the order last set: a muted channel's, or a muted
    server's channels', unread messages are shown as read; their mentions of you are
    not. Ended ones are not listed."""
    return JSONResponse(await mutes.list_mutes(conn, actor))


@router.put("/channel/{channel_id}", response_model=MutePayload)
async def put_channel_mute(
    channel_id: UUID, body: MuteIn, actor: CurrentActor, conn: Conn
) -> Response:
    """Mute a text channel or a conversation (its id is its channel's) you may see,
    until `until` (null: until unmuted), replacing any mute of it. Your other sessions
    are told (`mute.updated`). A channel you may not see is 404 `CHANNEL_NOT_FOUND`, a
    voice channel or a category 400 `CANNOT_MUTE_CHANNEL`; past 1,000 mutes 400
    `TOO_MANY_MUTES`."""
    return JSONResponse(await mutes.mute(conn, actor, "channel", channel_id, body.until))


@router.delete("/channel/{channel_id}", status_code=204, response_class=Response)
async def delete_channel_mute(channel_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Unmute a channel or conversation (204 also when it was not muted); your other
    sessions are told (`mute.removed`). One neither muted nor visible is 404
    `CHANNEL_NOT_FOUND`, a voice channel or a category 400 `CANNOT_MUTE_CHANNEL`, as for
    the PUT."""
    await mutes.unmute(conn, actor, "channel", channel_id)
    return Response(status_code=204)


@router.put("/server/{server_id}", response_model=MutePayload)
async def put_server_mute(
    server_id: UUID, body: MuteIn, actor: CurrentActor, conn: Conn
) -> Response:
    """Mute a server you are a member of (every channel of it), as a channel is muted.
    Not a member: 404 `SERVER_NOT_FOUND`."""
    return JSONResponse(await mutes.mute(conn, actor, "server", server_id, body.until))


@router.delete("/server/{server_id}", status_code=204, response_class=Response)
async def delete_server_mute(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Unmute a server (204 also when it was not muted); your other sessions are told
    (`mute.removed`). Its channels' own mutes stay."""
    await mutes.unmute(conn, actor, "server", server_id)
    return Response(status_code=204)
