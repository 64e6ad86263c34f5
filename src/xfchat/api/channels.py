"""What every channel that carries messages has besides them: read states (acks and
read receipts) and typing."""

from __future__ import annotations

from uuid import UUID

from fastapi import Response
from pydantic import BaseModel, Field, StrictInt

from xfchat.api.deps import Conn, CurrentActor
from xfchat.api.models import Instant
from xfchat.api.routing import api_router
from xfchat.domain import messages

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


@router.post("/typing", status_code=204, response_class=Response)
async def post_typing(channel_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Show the others you are typing for the next 10 seconds (not stored)."""
    await messages.start_typing(conn, actor, channel_id)
    return Response(status_code=204)
