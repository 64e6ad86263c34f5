from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe, one
from xfchat.db.queries.users import PUBLIC_USER_COLUMNS_U, PublicUserRow, public_user_from

FRIEND_REQUEST_COLUMNS = "id, from_user_id, to_user_id, status, created_at, responded_at"
FRIEND_REQUEST_COLUMNS_R = ", ".join("r." + c.strip() for c in FRIEND_REQUEST_COLUMNS.split(","))


@dataclass(frozen=True)
class FriendRequestRow:
    id: UUID
    from_user_id: UUID
    to_user_id: UUID
    status: str
    created_at: datetime
    responded_at: datetime | None


@dataclass(frozen=True)
class FriendRequestWithUser:
    request: FriendRequestRow
    other: PublicUserRow  # the user at the other end, from the viewer's side


@dataclass(frozen=True)
class FriendRow:
    user: PublicUserRow
    since: datetime


def _pair(a: UUID, b: UUID) -> tuple[UUID, UUID]:
    low, high = sorted((a, b))
    return low, high


async def count_pending_sent(conn: asyncpg.Connection, *, from_user_id: UUID) -> int:
    """How many of `from_user_id`'s requests wait for an answer."""
    count = await conn.fetchval(
        "SELECT count(*) FROM friend_requests WHERE from_user_id = $1 AND status = 'pending'",
        from_user_id,
    )
    return int(count)


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


_GET_FRIEND_REQUEST = f"SELECT {FRIEND_REQUEST_COLUMNS} FROM friend_requests WHERE id = $1"


async def get_friend_request(
    conn: asyncpg.Connection, *, request_id: UUID, lock: bool = False
) -> FriendRequestRow | None:
    """The request (locked FOR UPDATE if asked)."""
    sql = _GET_FRIEND_REQUEST + " FOR UPDATE" if lock else _GET_FRIEND_REQUEST
    return maybe(FriendRequestRow, await conn.fetchrow(sql, request_id))


async def get_pending_request_between(
    conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID
) -> FriendRequestRow | None:
    """The pending request between two users, whichever way it goes (locked)."""
    low, high = _pair(user_a, user_b)
    record = await conn.fetchrow(
        f"""
        SELECT {FRIEND_REQUEST_COLUMNS} FROM friend_requests
        WHERE status = 'pending'
          AND LEAST(from_user_id, to_user_id) = $1 AND GREATEST(from_user_id, to_user_id) = $2
        FOR UPDATE
        """,
        low,
        high,
    )
    return maybe(FriendRequestRow, record)


async def declined_for(
    conn: asyncpg.Connection, *, from_user_id: UUID, to_user_id: UUID, within_s: float
) -> float | None:
    """Seconds left of `within_s` since `to_user_id` last declined a request from
    `from_user_id` (None: no such decline that recent, or `to_user_id` has asked
    `from_user_id` since: their no is withdrawn, whatever came of their request)."""
    left = await conn.fetchval(
        """
        SELECT extract(epoch FROM max(d.responded_at) + make_interval(secs => $3) - now())
        FROM friend_requests d
        WHERE d.from_user_id = $1 AND d.to_user_id = $2 AND d.status = 'declined'
          AND d.responded_at > now() - make_interval(secs => $3)
          AND NOT EXISTS (SELECT 1 FROM friend_requests r
                          WHERE r.from_user_id = $2 AND r.to_user_id = $1
                            AND r.created_at >= d.responded_at)
        """,
        from_user_id,
        to_user_id,
        within_s,
    )
    return None if left is None else max(1.0, float(left))


async def set_friend_request_status(
    conn: asyncpg.Connection, *, request_id: UUID, status: str
) -> FriendRequestRow:
    record = await conn.fetchrow(
        f"""
        UPDATE friend_requests SET status = $2, responded_at = now() WHERE id = $1
        RETURNING {FRIEND_REQUEST_COLUMNS}
        """,
        request_id,
        status,
    )
    return one(FriendRequestRow, record)


async def list_pending_requests(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    direction: Literal["both", "incoming", "outgoing"] = "both",
    before: tuple[datetime, UUID] | None = None,
    limit: int,
) -> list[FriendRequestWithUser]:
    """The user's pending requests, newest first (by time, then id): the first `limit`
    after `before` (a request's created_at and id). Each way walks its own index
    (friend_requests_incoming_idx, _outgoing_idx) no further than `limit`."""
    at, after_id = before if before is not None else (None, None)
    records = await conn.fetch(
        f"""
        WITH page AS (
            (SELECT r.* FROM friend_requests r
             WHERE r.to_user_id = $1 AND r.status = 'pending' AND $2::text <> 'outgoing'
               AND ($3::timestamptz IS NULL OR (r.created_at, r.id) < ($3, $4::uuid))
               AND NOT EXISTS (  -- sent by someone $1 blocked: never shown to $1
                   SELECT 1 FROM blocks b
                   WHERE b.blocker_id = $1 AND b.blocked_id = r.from_user_id
               )
             ORDER BY r.created_at DESC, r.id DESC LIMIT $5)
            UNION ALL
            (SELECT r.* FROM friend_requests r
             WHERE r.from_user_id = $1 AND r.status = 'pending' AND $2::text <> 'incoming'
               AND ($3::timestamptz IS NULL OR (r.created_at, r.id) < ($3, $4::uuid))
             ORDER BY r.created_at DESC, r.id DESC LIMIT $5)
        )
        SELECT {FRIEND_REQUEST_COLUMNS_R}, {PUBLIC_USER_COLUMNS_U}
        FROM page r
        JOIN users u
          ON u.id = CASE WHEN r.from_user_id = $1 THEN r.to_user_id ELSE r.from_user_id END
        ORDER BY r.created_at DESC, r.id DESC
        LIMIT $5
        """,
        user_id,
        direction,
        at,
        after_id,
        limit,
    )
    return [
        FriendRequestWithUser(
            FriendRequestRow(**{f: r[f] for f in FriendRequestRow.__dataclass_fields__}),
            public_user_from(r),
        )
        for r in records
    ]


async def insert_friendship(conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID) -> bool:
    low, high = _pair(user_a, user_b)
    return bool(
        await conn.fetchval(
            """
            INSERT INTO friendships (user_low, user_high) VALUES ($1, $2)
            ON CONFLICT DO NOTHING RETURNING true
            """,
            low,
            high,
        )
    )


async def friendship_exists(conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID) -> bool:
    low, high = _pair(user_a, user_b)
    return bool(
        await conn.fetchval(
            "SELECT true FROM friendships WHERE user_low = $1 AND user_high = $2", low, high
        )
    )


async def delete_friendship(conn: asyncpg.Connection, *, user_a: UUID, user_b: UUID) -> bool:
    low, high = _pair(user_a, user_b)
    return bool(
        await conn.fetchval(
            "DELETE FROM friendships WHERE user_low = $1 AND user_high = $2 RETURNING true",
            low,
            high,
        )
    )


async def list_friends(conn: asyncpg.Connection, *, user_id: UUID) -> list[FriendRow]:
    records = await conn.fetch(
        f"""
        SELECT {PUBLIC_USER_COLUMNS_U}, f.created_at AS since
        FROM friendships f
        JOIN users u ON u.id = CASE WHEN f.user_low = $1 THEN f.user_high ELSE f.user_low END
        WHERE f.user_low = $1 OR f.user_high = $1
        ORDER BY lower(u.username)
        """,
        user_id,
    )
    return [FriendRow(public_user_from(r), r["since"]) for r in records]


async def list_friend_ids(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    records = await conn.fetch(
        """
        SELECT CASE WHEN user_low = $1 THEN user_high ELSE user_low END AS id
        FROM friendships WHERE user_low = $1 OR user_high = $1
        """,
        user_id,
    )
    return [r["id"] for r in records]


async def list_counterparts(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    """Everyone the user has a friendship, a friend request (any status) or a block with,
    either way: the pairs an account deletion locks."""
    records = await conn.fetch(
        """
        SELECT CASE WHEN user_low = $1 THEN user_high ELSE user_low END AS id
        FROM friendships WHERE user_low = $1 OR user_high = $1
        UNION
        -- (each way by its own index, migration 0054: `from OR to` read every request)
        SELECT to_user_id FROM friend_requests WHERE from_user_id = $1
        UNION
        SELECT from_user_id FROM friend_requests WHERE to_user_id = $1
        UNION
        SELECT CASE WHEN blocker_id = $1 THEN blocked_id ELSE blocker_id END
        FROM blocks WHERE blocker_id = $1 OR blocked_id = $1
        """,
        user_id,
    )
    return [r["id"] for r in records]


async def delete_friendships_of(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    """End every friendship of the user; their former friends."""
    records = await conn.fetch(
        """
        DELETE FROM friendships WHERE user_low = $1 OR user_high = $1
        RETURNING CASE WHEN user_low = $1 THEN user_high ELSE user_low END AS id
        """,
        user_id,
    )
    return [r["id"] for r in records]


async def delete_friend_requests_of(
    conn: asyncpg.Connection, *, user_id: UUID
) -> list[FriendRequestRow]:
    """Delete every friend request from or to the user, answered or not; the pending
    ones, as they were."""
    records = await conn.fetch(
        f"""
        DELETE FROM friend_requests r WHERE r.from_user_id = $1 OR r.to_user_id = $1
        RETURNING {FRIEND_REQUEST_COLUMNS_R}
        """,
        user_id,
    )
    rows = [FriendRequestRow(**dict(r)) for r in records]
    return [r for r in rows if r.status == "pending"]
