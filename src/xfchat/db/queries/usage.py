from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

import asyncpg

from xfchat.db.queries import many


@dataclass(frozen=True)
class UsageRow:
    day: date
    requests: int
    messages_sent: int
    bytes_uploaded: int


async def add_usage(
    conn: asyncpg.Connection,
    *,
    user_ids: list[UUID],
    days: list[date],
    requests: list[int],
    messages_sent: list[int],
    bytes_uploaded: list[int],
) -> None:
    """Add many users' counts in one statement."""
    await conn.execute(
        """
        INSERT INTO usage_tracking AS u (user_id, day, requests, messages_sent, bytes_uploaded)
        SELECT * FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[])
        ON CONFLICT (user_id, day) DO UPDATE SET
            requests = u.requests + EXCLUDED.requests,
            messages_sent = u.messages_sent + EXCLUDED.messages_sent,
            bytes_uploaded = u.bytes_uploaded + EXCLUDED.bytes_uploaded
        """,
        user_ids,
        days,
        requests,
        messages_sent,
        bytes_uploaded,
    )


async def list_usage(conn: asyncpg.Connection, *, user_id: UUID, days: int) -> list[UsageRow]:
    records = await conn.fetch(
        """
        SELECT day, requests, messages_sent, bytes_uploaded FROM usage_tracking
        WHERE user_id = $1 AND day > (now() AT TIME ZONE 'UTC')::date - $2::integer
        ORDER BY day DESC
        """,
        user_id,
        days,
    )
    return many(UsageRow, records)
