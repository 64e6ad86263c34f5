"""The current user's notification settings of channels, conversations and servers."""

from __future__ import annotations

from uuid import UUID

from fastapi import Response
from pydantic import BaseModel, Field, StrictBool

from xfchat.api.deps import Conn, CurrentActor
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import notification_settings as ns
from xfchat.domain.event_payloads import NotificationSettingPayload
from xfchat.domain.user_targets import TargetKind

router = api_router(prefix="/api/users/@me/notification-settings", tags=["users"])


class NotificationSettingIn(BaseModel):
    level: ns.Level = Field(
        description="which new messages to be notified of: all, mentions or nothing"
    )
    suppress_everyone: StrictBool = Field(
        default=False,
        description="a server's only: @everyone and @here do not count as mentioning you",
    )


@router.get("", response_model=list[NotificationSettingPayload])
async def get_notification_settings(actor: CurrentActor, conn: Conn) -> Response:
    """Your notification settings (at most 1,000), in the order last set. With none, a
    conversation is `all`, a server channel follows your server's setting, a server its
    `default_notifications` (`all` unless its managers chose `mentions`)."""
    return JSONResponse(await ns.list_notification_settings(conn, actor))


@router.put("/channel/{channel_id}", response_model=NotificationSettingPayload)
async def put_channel_notification_setting(
    channel_id: UUID, body: NotificationSettingIn, actor: CurrentActor, conn: Conn
) -> Response:
    """Set a text channel's or a conversation's (its id is its channel's) notification
    level, replacing any setting of it; your sessions are told
    (`notification_settings.updated`). A channel you may not see is 404
    `CHANNEL_NOT_FOUND`, a voice channel or a category 400 `CANNOT_SET_NOTIFICATIONS`,
    `suppress_everyone` 400 `INVALID_NOTIFICATION_SETTING`; past 1,000 settings 400
    `TOO_MANY_NOTIFICATION_SETTINGS`."""
    return JSONResponse(await _set(conn, actor, "channel", channel_id, body))


@router.delete("/channel/{channel_id}", status_code=204, response_class=Response)
async def delete_channel_notification_setting(
    channel_id: UUID, actor: CurrentActor, conn: Conn
) -> Response:
    """Put a channel's or conversation's setting back to its default (204 also when none
    was set): your sessions are told (`notification_settings.removed`). The 404s and
    400s of the PUT."""
    await ns.reset_notification_setting(conn, actor, "channel", channel_id)
    return Response(status_code=204)


@router.put("/server/{server_id}", response_model=NotificationSettingPayload)
async def put_server_notification_setting(
    server_id: UUID, body: NotificationSettingIn, actor: CurrentActor, conn: Conn
) -> Response:
    """Set a server's notification level (its channels without their own follow it) and
    whether @everyone and @here notify, as a channel's. Not a member: 404
    `SERVER_NOT_FOUND`."""
    return JSONResponse(await _set(conn, actor, "server", server_id, body))


@router.delete("/server/{server_id}", status_code=204, response_class=Response)
async def delete_server_notification_setting(
    server_id: UUID, actor: CurrentActor, conn: Conn
) -> Response:
    """Put a server's setting back to its default; its channels' own stay."""
    await ns.reset_notification_setting(conn, actor, "server", server_id)
    return Response(status_code=204)


async def _set(
    conn: Conn, actor: CurrentActor, kind: TargetKind, target_id: UUID, body: NotificationSettingIn
) -> NotificationSettingPayload:
    return await ns.set_notification_setting(
        conn, actor, kind, target_id, body.level, body.suppress_everyone
    )
