from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries.users import PUBLIC_USER_COLUMNS_U, PublicUserRow, public_user_from


async def insert_block(conn: asyncpg.Connection, *, blocker_id: UUID, blocked_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            """
            INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)
            ON CONFLICT DO NOTHING RETURNING true
            """,
            blocker_id,
            blocked_id,
        )
    )


async def delete_block(conn: asyncpg.Connection, *, blocker_id: UUID, blocked_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2 RETURNING true",
            blocker_id,
            blocked_id,
        )
    )


async def block_exists(conn: asyncpg.Connection, *, blocker_id: UUID, blocked_id: UUID) -> bool:
    """Whether `blocker_id` has blocked `blocked_id`."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
            blocker_id,
            blocked_id,
        )
    )


async def count_blocks(conn: asyncpg.Connection, *, blocker_id: UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM blocks WHERE blocker_id = $1", blocker_id))


async def list_blocked(
    conn: asyncpg.Connection, *, blocker_id: UUID, after: UUID | None = None, limit: int
) -> list[PublicUserRow]:
    """Those `blocker_id` blocked, by user id, the first `limit` after `after`."""
    records = await conn.fetch(
        f"""
        SELECT {PUBLIC_USER_COLUMNS_U} FROM blocks b JOIN users u ON u.id = b.blocked_id
        WHERE b.blocker_id = $1 AND ($2::uuid IS NULL OR b.blocked_id > $2)
        ORDER BY b.blocked_id LIMIT $3
        """,
        blocker_id,
        after,
        limit,
    )
    return [public_user_from(r) for r in records]


async def delete_blocks_of(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    """Delete every block the user made or was the target of; those who had blocked
    the user."""
    records = await conn.fetch(
        """
        DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1
        RETURNING CASE WHEN blocked_id = $1 THEN blocker_id END AS blocker
        """,
        user_id,
    )
    return [r["blocker"] for r in records if r["blocker"] is not None]
