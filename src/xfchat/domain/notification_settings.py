"""Notification settings of a channel, a conversation or a server, as Discord's: which
new messages your clients notify you of. `all`, `mentions` (those mentioning you, a
role of yours, or @everyone / @here unless the server's `suppress_everyone`) or
`nothing`. With none set, a conversation is `all`, a server's channel follows its
server's setting, and a server is `all`. Only your own clients read them: the server
delivers and counts as ever, and tells your sessions (`ready`'s
`notification_settings`, `notification_settings.updated`, `.removed`) and nobody else.

A user holds at most MAX_NOTIFICATION_SETTINGS. What you may set is what you may see
(domain/access.py, through domain/user_targets.py, as mutes): a target you may not see
is the same 404 as one that does not exist."""

from __future__ import annotations

from typing import Literal, cast
from uuid import UUID

import asyncpg

from xfchat.db.queries import notification_settings as q
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MuteTargetPayload, NotificationSettingPayload
from xfchat.domain.events import (
    NOTIFICATION_SETTINGS_REMOVED,
    NOTIFICATION_SETTINGS_UPDATED,
    emit,
)
from xfchat.domain.user_targets import TargetKind, kind_of, lock_user, resolve_target
from xfchat.errors import BadRequest

MAX_NOTIFICATION_SETTINGS = 1000
Level = Literal["all", "mentions", "nothing"]


def setting_json(row: q.NotificationSettingRow) -> NotificationSettingPayload:
    return {
        "kind": kind_of(row.kind),
        "id": str(row.target_id),
        "level": cast(Level, row.level),  # (the table's CHECK holds it to these)
        "suppress_everyone": row.suppress_everyone,
    }


def _cannot_set() -> BadRequest:
    return BadRequest(
        "notification settings are of text channels and conversations (or a whole server)",
        code="CANNOT_SET_NOTIFICATIONS",
    )


async def list_notification_settings(
    conn: asyncpg.Connection, actor: Actor
) -> list[NotificationSettingPayload]:
    """The actor's settings (at most MAX_NOTIFICATION_SETTINGS), in the order last set."""
    rows = await q.list_notification_settings(conn, user_id=actor.user_id)
    return [setting_json(r) for r in rows]


async def set_notification_setting(
    conn: asyncpg.Connection,
    actor: Actor,
    kind: TargetKind,
    target_id: UUID,
    level: Level,
    suppress_everyone: bool,
) -> NotificationSettingPayload:
    """Set the level of a channel, conversation or server (and, for a server, whether
    @everyone and @here notify), replacing any setting of it; the actor's sessions are
    told (`notification_settings.updated`). The setting held already is answered as it
    is: nothing written or told.

    Raises: NotFound (CHANNEL_NOT_FOUND, SERVER_NOT_FOUND: not there or not visible);
    BadRequest (CANNOT_SET_NOTIFICATIONS, INVALID_NOTIFICATION_SETTING: suppress_everyone
    on a channel, TOO_MANY_NOTIFICATION_SETTINGS); Unauthorized (SESSION_REVOKED)."""
    if kind == "channel" and suppress_everyone:
        raise BadRequest(
            "suppress_everyone is a server's setting (a channel follows its server's)",
            code="INVALID_NOTIFICATION_SETTING",
            field="suppress_everyone",
        )
    async with conn.transaction():
        channel_id, server_id = await resolve_target(
            conn, actor, kind, target_id, lock=True, refused=_cannot_set
        )
        await lock_user(conn, b"notification_settings", actor.user_id)
        held = await q.get_notification_setting(conn, user_id=actor.user_id, target_id=target_id)
        if held is not None and (held.level, held.suppress_everyone) == (level, suppress_everyone):
            return setting_json(held)
        if held is None and (
            await q.count_notification_settings(conn, user_id=actor.user_id)
            >= MAX_NOTIFICATION_SETTINGS
        ):
            raise BadRequest(
                f"you can hold at most {MAX_NOTIFICATION_SETTINGS} notification settings;"
                " put one back to its default first",
                code="TOO_MANY_NOTIFICATION_SETTINGS",
            )
        row = await q.upsert_notification_setting(
            conn,
            user_id=actor.user_id,
            channel_id=channel_id,
            server_id=server_id,
            level=level,
            suppress_everyone=suppress_everyone,
        )
        payload = setting_json(row)
        await emit(conn, NOTIFICATION_SETTINGS_UPDATED.to_user(actor.user_id, payload))
    return payload


async def reset_notification_setting(
    conn: asyncpg.Connection, actor: Actor, kind: TargetKind, target_id: UUID
) -> None:
    """Put a channel's, conversation's or server's setting back to its default (doing so
    where none is set changes nothing); the actor's sessions are told
    (`notification_settings.removed`). One of a target the actor no longer sees can
    still be removed: it is theirs.

    Raises: NotFound (CHANNEL_NOT_FOUND, SERVER_NOT_FOUND) for a target neither set nor
    visible; BadRequest (CANNOT_SET_NOTIFICATIONS) for a voice channel or a category."""
    async with conn.transaction():
        held = await q.get_notification_setting(conn, user_id=actor.user_id, target_id=target_id)
        if held is None or held.kind != kind:
            await resolve_target(conn, actor, kind, target_id, lock=False, refused=_cannot_set)
        elif await q.delete_notification_setting(conn, user_id=actor.user_id, target_id=target_id):
            target: MuteTargetPayload = {"kind": kind_of(held.kind), "id": str(held.target_id)}
            await emit(conn, NOTIFICATION_SETTINGS_REMOVED.to_user(actor.user_id, target))
