"""Pinned messages of a channel."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Response

from xfchat.api.deps import Conn, CurrentActor, counted_actor
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import pins
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MessagePayload

router = api_router(prefix="/api/channels/{channel_id}/pins", tags=["messages"])


@router.get("", response_model=list[MessagePayload])
async def get_pins(channel_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The channel's pinned messages (at most 50), the most recently pinned first."""
    return JSONResponse(await pins.list_pins(conn, actor, channel_id))


PinningActor = Annotated[Actor, Depends(counted_actor("pins"))]


@router.put("/{message_id}", status_code=204, response_class=Response)
async def put_pin(channel_id: UUID, message_id: UUID, actor: PinningActor, conn: Conn) -> Response:
    """Pin a message (MANAGE_MESSAGES in a server channel; any participant in a
    conversation). A `pin` system message says who pinned it. Counted in `pins` per
    user (XFCHAT_RATE_PINS_USER), as unpinning is."""
    await pins.pin(conn, actor, channel_id, message_id)
    return Response(status_code=204)


@router.delete("/{message_id}", status_code=204, response_class=Response)
async def delete_pin(
    channel_id: UUID, message_id: UUID, actor: PinningActor, conn: Conn
) -> Response:
    """Unpin a message (as pinning)."""
    await pins.unpin(conn, actor, channel_id, message_id)
    return Response(status_code=204)
