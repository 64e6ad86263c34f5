"""Pinned messages: at most MAX_PINS per channel, pinned and unpinned by moderators in
a server channel (MANAGE_MESSAGES) and by any participant in a conversation (as
writing: not across a block). Pinning posts a system message of kind `pin` in the
channel (its author pinned; `reply_to_id` is the pinned message), as Discord does.
"""

from __future__ import annotations

import uuid
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages as q
from xfchat.db.queries.channels import ChannelRow
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import (
    MessagePayload,
)
from xfchat.domain.events import (
    MESSAGE_CREATED,
    MESSAGE_PINNED,
    MESSAGE_UNPINNED,
    emit_many,
)
from xfchat.domain.messages import message_channel, message_not_found, view_json
from xfchat.domain.permissions import Permission
from xfchat.errors import BadRequest, Forbidden

MAX_PINS = 50
PIN_TEXT = "pinned a message to this channel."


def _may_pin(channel: ChannelRow) -> Permission:
    """Moderators pin in a server channel; anyone who may write in a conversation."""
    if channel.server_id is None:
        return Permission.READ_MESSAGE_HISTORY | Permission.SEND_MESSAGES
    return Permission.READ_MESSAGE_HISTORY | Permission.MANAGE_MESSAGES


async def _pinning(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, message_id: UUID
) -> q.MessageRow:
    """The channel, if the actor may pin in it, and its live message, locked; then the
    channel's row too, until the transaction ends (pins of one channel are counted one
    change at a time). The message first, as a send replying to it locks them: the
    other order deadlocked with such sends."""
    await message_channel(conn, actor, channel_id, _may_pin, write=True)
    row = await q.get_message_for_update(conn, channel_id=channel_id, message_id=message_id)
    if row is None or row.deleted_at is not None:
        raise message_not_found()
    await q.lock_channel_counter(conn, channel_id=channel_id)
    return row


async def pin(conn: asyncpg.Connection, actor: Actor, channel_id: UUID, message_id: UUID) -> None:
    """Pin a live message of the channel (pinning it again changes nothing).

    Raises: NotFound (CHANNEL_NOT_FOUND, MESSAGE_NOT_FOUND); Forbidden
    (MISSING_PERMISSIONS, CANNOT_MESSAGE_USER, SYSTEM_MESSAGE); BadRequest (TOO_MANY_PINS,
    NOT_A_TEXT_CHANNEL)."""
    async with conn.transaction():
        row = await _pinning(conn, actor, channel_id, message_id)
        if row.kind != "default":  # (a pin notice: its pin would post a notice of it)
            raise Forbidden("a system message cannot be pinned", code="SYSTEM_MESSAGE")
        if row.pinned_at is not None:
            return
        if await q.count_pins(conn, channel_id=channel_id) >= MAX_PINS:
            raise BadRequest(
                f"a channel holds at most {MAX_PINS} pins: unpin one first",
                code="TOO_MANY_PINS",
            )
        pinned_at = await q.set_pinned(conn, message_id=message_id, pinned_by=actor.user_id)
        assert pinned_at is not None
        notice = await q.insert_message(
            conn,
            message_id=uuid.uuid4(),
            channel_id=channel_id,
            author_id=actor.user_id,
            content=PIN_TEXT,
            reply_to_id=message_id,
            kind="pin",
        )  # (its author has read it, as a send's author has: README, read positions)
        await q.advance_read_state(
            conn, user_id=actor.user_id, channel_id=channel_id, seq=notice.seq
        )
        view = await q.get_message_view(
            conn, viewer=actor.user_id, channel_id=channel_id, message_id=notice.id
        )
        assert view is not None
        await emit_many(
            conn,
            [
                MESSAGE_PINNED.to_channel(
                    channel_id,
                    {
                        "channel_id": str(channel_id),
                        "message_id": str(message_id),
                        "pinned_by": str(actor.user_id),
                        "pinned_at": pinned_at.isoformat(),
                    },
                ),
                MESSAGE_CREATED.to_channel(channel_id, view_json(view)),
            ],
        )


async def unpin(conn: asyncpg.Connection, actor: Actor, channel_id: UUID, message_id: UUID) -> None:
    """Unpin a message (unpinning one that is not pinned changes nothing).

    Raises: as `pin`, but TOO_MANY_PINS and SYSTEM_MESSAGE."""
    async with conn.transaction():
        row = await _pinning(conn, actor, channel_id, message_id)
        if row.pinned_at is None:
            return
        await q.set_pinned(conn, message_id=message_id, pinned_by=None)
        await emit_many(
            conn,
            [
                MESSAGE_UNPINNED.to_channel(
                    channel_id,
                    {
                        "channel_id": str(channel_id),
                        "message_id": str(message_id),
                        "pinned_by": str(actor.user_id),
                        "pinned_at": None,
                    },
                )
            ],
        )


async def list_pins(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID
) -> list[MessagePayload]:
    """The channel's pins, the most recently pinned first (READ_MESSAGE_HISTORY).

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS)."""
    await message_channel(conn, actor, channel_id)
    return [
        view_json(r) for r in await q.list_pins(conn, viewer=actor.user_id, channel_id=channel_id)
    ]
