"""The messages that mention the current user, wherever they may read them."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries import messages as q
from xfchat.db.queries import roles as roles_q
from xfchat.domain.access import visible_channels
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MessagePayload
from xfchat.domain.messages import MAX_PAGE, view_json
from xfchat.domain.permissions import Permission
from xfchat.errors import BadRequest


async def list_mentions(
    conn: asyncpg.Connection, actor: Actor, *, before: UUID | None, limit: int
) -> tuple[list[MessagePayload], bool]:
    """Live messages that mention the actor (by name, by a role they hold, or
    @everyone), newest first, in every channel whose
    history they may read (older than message `before`); and whether more follow.

    Raises: BadRequest (INVALID_PAGE, INVALID_CURSOR: `before` is no message that may
    have been listed: one that names the actor, or, where they may read, one that
    names @everyone or a role of theirs, or one deleted or edited since)."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is 1 to {MAX_PAGE}", code="INVALID_PAGE", field="limit")
    readable = [
        c.channel_id
        for c in (await visible_channels(conn, actor.user_id)).values()
        if c.permissions & Permission.READ_MESSAGE_HISTORY
    ]
    role_ids = await roles_q.list_user_role_ids(conn, user_id=actor.user_id)
    position = None
    if before is not None:
        position = await q.mention_position(
            conn,
            user_id=actor.user_id,
            message_id=before,
            channel_ids=readable,
            role_ids=role_ids,
        )
        if position is None:  # (an empty page would say "no more", which is not so)
            raise BadRequest(
                "that message is not among your mentions; start again without `before`",
                code="INVALID_CURSOR",
                field="before",
            )
    rows = await q.list_mentions(
        conn,
        user_id=actor.user_id,
        role_ids=role_ids,
        channel_ids=readable,
        before=position,
        limit=limit + 1,
    )
    return [view_json(r) for r in rows[:limit]], len(rows) > limit
