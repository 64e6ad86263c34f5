"""What every channel that carries messages has besides them: read states (acks and
read receipts) and typing."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel, Field, StrictInt

from xfchat.api.deps import Conn, CurrentActor, authenticate_request, bearer_token, get_settings
from xfchat.api.models import Instant
from xfchat.api.routing import api_router
from xfchat.domain import messages
from xfchat.domain.accounts import Actor

router = api_router(prefix="/api/channels/{channel_id}", tags=["channels"])


class AckIn(BaseModel):
    seq: StrictInt = Field(ge=0, le=2**62)


class ReadStateOut(BaseModel):
    user_id: UUID
    last_read_seq: int
    updated_at: Instant


@router.put("/ack")
async def put_ack(channel_id: UUID, body: AckIn, actor: CurrentActor, conn: Conn) -> ReadStateOut:
    """I have read up to `seq` (the others see it as a read receipt)."""
    state = await messages.acknowledge(conn, actor, channel_id, body.seq)
    return ReadStateOut(
        user_id=state.user_id, last_read_seq=state.last_read_seq, updated_at=state.updated_at
    )


@router.get("/read-states")
async def get_read_states(channel_id: UUID, actor: CurrentActor, conn: Conn) -> list[ReadStateOut]:
    """Read receipts: how far each of those who may see the channel has read."""
    return [
        ReadStateOut(user_id=s.user_id, last_read_seq=s.last_read_seq, updated_at=s.updated_at)
        for s in await messages.read_states(conn, actor, channel_id)
    ]


async def typing_actor(
    request: Request, channel_id: UUID, authorization: Annotated[str | None, Header()] = None
) -> Actor:
    """CurrentActor, also counted in the `typing` bucket of the user and channel, in the
    same statement as the API limit: each signal goes to everyone who sees the channel,
    and one lasts TYPING_EXPIRES_S, so the API's own limit would let one account tell a
    channel's every viewer ten times a second what once in eight seconds says."""
    rule = get_settings(request).rate_typing_user
    return await authenticate_request(
        request,
        bearer_token(authorization),
        lambda actor: [("typing", f"{actor.user_id}:{channel_id}", rule)],
    )


@router.post("/typing", status_code=204, response_class=Response)
async def post_typing(
    channel_id: UUID, actor: Annotated[Actor, Depends(typing_actor)], conn: Conn
) -> Response:
    """Show the others you are typing for the next 10 seconds (not stored). Counted in
    `typing` per user and channel (XFCHAT_RATE_TYPING_USER)."""
    await messages.start_typing(conn, actor, channel_id)
    return Response(status_code=204)
