from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe, one

CHANNEL_COLUMNS = (
    "id, server_id, kind, name, topic, position, parent_id, owner_id, dm_user_low, dm_user_high, "
    "user_limit, rate_limit_per_user, last_seq, created_at, updated_at"
)


@dataclass(frozen=True)
class ChannelRow:
    id: UUID
    server_id: UUID | None
    kind: str
    name: str | None
    topic: str | None
    position: int
    parent_id: UUID | None
    owner_id: UUID | None
    dm_user_low: UUID | None
    dm_user_high: UUID | None
    user_limit: int | None
    rate_limit_per_user: int
    last_seq: int
    created_at: datetime
    updated_at: datetime


async def insert_channel(
    conn: asyncpg.Connection,
    *,
    kind: str,
    server_id: UUID | None = None,
    name: str | None = None,
    topic: str | None = None,
    position: int = 0,
    parent_id: UUID | None = None,
    owner_id: UUID | None = None,
    dm_pair: tuple[UUID, UUID] | None = None,
    channel_id: UUID | None = None,
) -> ChannelRow:
    low, high = sorted(dm_pair) if dm_pair else (None, None)
    record = await conn.fetchrow(
        f"""
        INSERT INTO channels (id, server_id, kind, name, topic, position, parent_id, owner_id,
                              dm_user_low, dm_user_high)
        VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING {CHANNEL_COLUMNS}
        """,
        channel_id,
        server_id,
        kind,
        name,
        topic,
        position,
        parent_id,
        owner_id,
        low,
        high,
    )
    return one(ChannelRow, record)


async def get_channel(conn: asyncpg.Connection, *, channel_id: UUID) -> ChannelRow | None:
    record = await conn.fetchrow(
        f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1", channel_id
    )
    return maybe(ChannelRow, record)


async def insert_conversation_participant(
    conn: asyncpg.Connection, *, channel_id: UUID, user_id: UUID
) -> None:
    await conn.execute(
        "INSERT INTO conversation_participants (channel_id, user_id) VALUES ($1, $2)",
        channel_id,
        user_id,
    )
