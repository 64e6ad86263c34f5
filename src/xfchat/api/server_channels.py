"""A server's channels: make, list, reorder; change and delete one; its permission
overrides. (Their messages, read states and typing are the routes every channel has:
api/messages.py, api/channels.py.)"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Body, Response
from pydantic import BaseModel, Field, StrictBool, StrictInt

from xfchat.api.deps import Conn, CurrentActor
from xfchat.api.models import PositionIn, Text, enforced, omittable, positions_of
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.domain import roles, server_channels
from xfchat.domain.event_payloads import ServerChannelPayload
from xfchat.domain.roles import parse_permissions
from xfchat.domain.servers import get_server

router = api_router(tags=["channels"])


def _channel_name(schema: dict[str, Any]) -> None:
    """A name's bound, never null (null is INVALID_CHANNEL_NAME: it would be no name)."""
    enforced(100, 1)(schema)
    omittable(schema)


class ChannelFields(BaseModel):
    """Only the fields present change on PATCH. rate_limit_per_user: slowmode seconds
    (text, 0-21600); user_limit: voice, 0-99 or null; parent_id: a category or null;
    permissions_synced: follow the category's overrides."""

    name: Text | None = Field(default=None, max_length=1024, json_schema_extra=_channel_name)
    topic: Text | None = Field(default=None, max_length=4096, json_schema_extra=enforced(1024))
    position: StrictInt | None = Field(
        default=None, ge=0, le=server_channels.MAX_POSITION, json_schema_extra=omittable
    )
    parent_id: UUID | None = None
    rate_limit_per_user: StrictInt | None = Field(
        default=None, ge=0, le=server_channels.MAX_SLOWMODE, json_schema_extra=omittable
    )
    user_limit: StrictInt | None = Field(default=None, ge=0, le=server_channels.MAX_USER_LIMIT)
    permissions_synced: StrictBool | None = None


class ChannelIn(ChannelFields):
    kind: Literal["text", "voice", "category"] = "text"
    name: Text = Field(max_length=1024, json_schema_extra=enforced(100, 1))


class OverrideIn(BaseModel):
    """Decimal strings of permission bits; a bit is allowed, denied, or neither."""

    allow: Text = Field(default="0", max_length=32)
    deny: Text = Field(default="0", max_length=32)


@router.post(
    "/api/servers/{server_id}/channels", status_code=201, response_model=ServerChannelPayload
)
async def post_channel(
    server_id: UUID, body: ChannelIn, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """Make a text, voice or category channel (MANAGE_CHANNELS)."""
    fields = body.model_dump(exclude_unset=True, exclude={"kind"})
    made = await server_channels.create_channel(
        conn, actor, server_id, kind=body.kind, fields=fields, reason=reason
    )
    return JSONResponse(made, status_code=201)


@router.get("/api/servers/{server_id}/channels", response_model=list[ServerChannelPayload])
async def get_channels(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The channels you may see, in display order."""
    return JSONResponse((await get_server(conn, actor, server_id))["channels"])


@router.patch("/api/servers/{server_id}/channels", response_model=list[ServerChannelPayload])
async def patch_channels(
    server_id: UUID,
    body: Annotated[list[PositionIn], Body(max_length=server_channels.MAX_CHANNELS)],
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    """Reorder in one call: [{"id", "position"}, ...] (MANAGE_CHANNELS)."""
    positions = positions_of(body)
    return JSONResponse(
        await server_channels.reorder_channels(conn, actor, server_id, positions, reason)
    )


@router.get(
    "/api/channels/{channel_id}",
    response_model=ServerChannelPayload | server_channels.ConversationChannelPayload,
)
async def get_channel(channel_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Any channel you may see, by id (a message, a search hit or a mention names only
    its channel): a server channel as GET /api/servers/{id} lists it, with its
    `server_id`; a conversation as GET /api/conversations/{id} shows it, with
    `server_id` null. 404 CHANNEL_NOT_FOUND for one you may not see, as for none."""
    return JSONResponse(await server_channels.get_channel(conn, actor, channel_id))


@router.patch("/api/channels/{channel_id}", response_model=ServerChannelPayload)
async def patch_channel(
    channel_id: UUID, body: ChannelFields, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    fields = body.model_dump(exclude_unset=True)
    return JSONResponse(
        await server_channels.update_channel(conn, actor, channel_id, fields=fields, reason=reason)
    )


@router.delete("/api/channels/{channel_id}", status_code=204, response_class=Response)
async def delete_channel(
    channel_id: UUID, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """Delete a server channel and its messages (MANAGE_CHANNELS in it). A category's
    channels stay, uncategorised, those following its overrides keeping a copy of them
    as their own (nobody's permissions change). 409 CATEGORY_OVERRIDES_CONFLICT when a
    channel following it has overrides of its own that cannot take the copy
    (`channel_ids` names those you may see: change them, or unsync them, first); 403
    TOO_MANY_OVERRIDES when the copy would pass a channel's or the server's limit."""
    await server_channels.delete_channel(conn, actor, channel_id, reason)
    return Response(status_code=204)


OverrideKind = Literal["role", "member"]
OVERRIDE = "/api/channels/{channel_id}/overrides/{kind}/{target_id}"


async def _override(
    conn: Conn,
    actor: CurrentActor,
    channel_id: UUID,
    kind: OverrideKind,
    target_id: UUID,
    body: OverrideIn | None,
    reason: str | None,
) -> Response:
    return JSONResponse(
        await roles.set_override(
            conn,
            actor,
            channel_id,
            kind=kind,
            target_id=target_id,
            allow=parse_permissions(body.allow, "allow") if body else None,
            deny=parse_permissions(body.deny, "deny") if body else None,
            reason=reason,
        )
    )


@router.put(OVERRIDE, response_model=ServerChannelPayload)
async def put_override(
    channel_id: UUID,
    kind: OverrideKind,
    target_id: UUID,
    body: OverrideIn,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    """Set the channel's override for a role or a member (MANAGE_ROLES)."""
    return await _override(conn, actor, channel_id, kind, target_id, body, reason)


@router.delete(OVERRIDE, response_model=ServerChannelPayload)
async def delete_override(
    channel_id: UUID,
    kind: OverrideKind,
    target_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    return await _override(conn, actor, channel_id, kind, target_id, None, reason)
