"""Voice over HTTP: who is in a voice channel, server mute, deafen and move, and the ICE
servers. Joining, leaving and signalling happen on the gateway (api/gateway_voice.py):
a voice state belongs to a gateway connection."""

from __future__ import annotations

from uuid import UUID

from fastapi import Response
from pydantic import BaseModel, StrictBool

from xfchat.api.deps import AppSettings, Conn, CurrentActor
from xfchat.api.members import UserRef, _user
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.domain import voice, voice_moderation
from xfchat.domain.event_payloads import VoiceStatePayload
from xfchat.domain.ice import IceServersPayload, ice_servers

router = api_router(tags=["voice"])


class MemberVoiceIn(BaseModel):
    """Only the fields present change. mute: server mute (MUTE_MEMBERS); deaf: server
    deafen (DEAFEN_MEMBERS); channel_id: move them to this voice channel of the server,
    or null to disconnect them (MOVE_MEMBERS)."""

    mute: StrictBool = False
    deaf: StrictBool = False
    channel_id: UUID | None = None


@router.get("/api/channels/{channel_id}/voice-states", response_model=list[VoiceStatePayload])
async def get_voice_states(channel_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Who is in a voice channel or a conversation's call, in the order they joined."""
    return JSONResponse(await voice.list_voice_states(conn, actor, channel_id))


@router.patch(
    "/api/servers/{server_id}/members/{user_id}/voice",
    response_model=voice_moderation.MemberVoicePayload,
)
async def patch_member_voice(
    server_id: UUID,
    user_id: UserRef,
    body: MemberVoiceIn,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    """Server mute or deafen a member (kept until lifted, in voice or not), move them to
    another voice channel, or disconnect them."""
    fields = body.model_dump(exclude_unset=True)
    return JSONResponse(
        await voice_moderation.moderate_voice(
            conn, actor, server_id, _user(actor, user_id), fields=fields, reason=reason
        )
    )


@router.get("/api/voice/ice-servers", response_model=IceServersPayload)
async def get_ice_servers(actor: CurrentActor, settings: AppSettings) -> Response:
    """The STUN and TURN servers to give RTCPeerConnection (TURN credentials expire at
    `expires_at`: fetch again before)."""
    return JSONResponse(ice_servers(settings, actor.user_id))
