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


async def get_direct_channel(
    conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID
) -> ChannelRow | None:
    low, high = sorted((user_a, user_b))
    record = await conn.fetchrow(
        f"""
        SELECT {CHANNEL_COLUMNS} FROM channels
        WHERE kind = 'direct' AND dm_user_low = $1 AND dm_user_high = $2
        """,
        low,
        high,
    )
    return maybe(ChannelRow, record)


async def insert_direct_channel(
    conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID
) -> ChannelRow | None:
    """Create the pair's direct conversation; None if it already exists."""
    low, high = sorted((user_a, user_b))
    record = await conn.fetchrow(
        f"""
        INSERT INTO channels (kind, dm_user_low, dm_user_high) VALUES ('direct', $1, $2)
        ON CONFLICT (dm_user_low, dm_user_high) WHERE kind = 'direct' DO NOTHING
        RETURNING {CHANNEL_COLUMNS}
        """,
        low,
        high,
    )
    return maybe(ChannelRow, record)


async def insert_conversation_participants(
    conn: asyncpg.Connection, *, channel_id: UUID, user_ids: list[UUID]
) -> list[UUID]:
    """Add people to a conversation; returns those who were not in it yet."""
    records = await conn.fetch(
        """
        INSERT INTO conversation_participants (channel_id, user_id)
        SELECT $1, unnest($2::uuid[])
        ON CONFLICT DO NOTHING RETURNING user_id
        """,
        channel_id,
        user_ids,
    )
    return [r["user_id"] for r in records]
