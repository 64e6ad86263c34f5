"""Conversations: direct (two people, one per pair) and group."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.realtime.events import Event, Stream, emit_many


def conversation_summary(
    channel: channels_q.ChannelRow, participants: list[UUID]
) -> dict[str, object]:
    return {
        "id": str(channel.id),
        "kind": channel.kind,
        "name": channel.name,
        "owner_id": str(channel.owner_id) if channel.owner_id else None,
        "participant_ids": [str(p) for p in participants],
        "created_at": channel.created_at.isoformat(),
    }


async def get_or_create_direct(
    conn: asyncpg.Connection, user_a: UUID, user_b: UUID
) -> tuple[channels_q.ChannelRow, bool]:
    """The pair's direct conversation, created (with both participants) if missing.
    Must run inside the caller's transaction; returns (conversation, created)."""
    channel = await channels_q.insert_direct_channel(conn, user_a=user_a, user_b=user_b)
    created = channel is not None
    if channel is None:
        channel = await channels_q.get_direct_channel(conn, user_a=user_a, user_b=user_b)
        assert channel is not None
    added = await channels_q.insert_conversation_participants(
        conn, channel_id=channel.id, user_ids=[user_a, user_b]
    )
    if added:
        summary = conversation_summary(channel, sorted([user_a, user_b]))
        await emit_many(
            conn, [Event("conversation.created", Stream.user(u), summary) for u in added]
        )
    return channel, created
