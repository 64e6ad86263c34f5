from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import one

MESSAGE_COLUMNS = (
    "id, channel_id, seq, author_id, kind, content, nonce, reply_to_id, mentions, "
    "mention_everyone, created_at, edited_at, deleted_at"
)


@dataclass(frozen=True)
class MessageRow:
    id: UUID
    channel_id: UUID
    seq: int
    author_id: UUID | None
    kind: str
    content: str
    nonce: str | None
    reply_to_id: UUID | None
    mentions: list[UUID]
    mention_everyone: bool
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None


async def insert_message(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    channel_id: UUID,
    author_id: UUID | None,
    content: str,
    nonce: str | None = None,
    reply_to_id: UUID | None = None,
    mentions: list[UUID] | None = None,
) -> MessageRow:
    """Insert a message at the channel's next sequence number. The counter row stays
    locked until the caller's transaction ends, so numbers are gap-free and commit-ordered."""
    record = await conn.fetchrow(
        f"""
        WITH c AS (
            UPDATE channels SET last_seq = last_seq + 1 WHERE id = $2 RETURNING last_seq
        )
        INSERT INTO messages (id, channel_id, seq, author_id, content, nonce, reply_to_id, mentions)
        SELECT $1, $2, c.last_seq, $3, $4, $5, $6, $7 FROM c
        RETURNING {MESSAGE_COLUMNS}
        """,
        message_id,
        channel_id,
        author_id,
        content,
        nonce,
        reply_to_id,
        mentions or [],
    )
    return one(MessageRow, record)


async def insert_reaction(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID, emoji: str
) -> None:
    await conn.execute(
        "INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)",
        message_id,
        user_id,
        emoji,
    )


async def count_messages(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel_id)
    )
