from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import one


@dataclass(frozen=True)
class FriendRequestRow:
    id: UUID
    from_user_id: UUID
    to_user_id: UUID
    status: str
    created_at: datetime
    responded_at: datetime | None


FRIEND_REQUEST_COLUMNS = "id, from_user_id, to_user_id, status, created_at, responded_at"


async def insert_friend_request(
    conn: asyncpg.Connection, *, from_user_id: UUID, to_user_id: UUID
) -> FriendRequestRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO friend_requests (from_user_id, to_user_id) VALUES ($1, $2)
        RETURNING {FRIEND_REQUEST_COLUMNS}
        """,
        from_user_id,
        to_user_id,
    )
    return one(FriendRequestRow, record)


async def insert_friendship(conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID) -> None:
    low, high = sorted((user_a, user_b))
    await conn.execute(
        "INSERT INTO friendships (user_low, user_high) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        low,
        high,
    )
