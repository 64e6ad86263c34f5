"""Who may not (re)join a server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import many

BAN_COLUMNS = "server_id, user_id, banned_by, reason, created_at"


@dataclass(frozen=True)
class BanRow:
    server_id: UUID
    user_id: UUID
    banned_by: UUID | None
    reason: str | None
    created_at: datetime


async def insert_ban(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, banned_by: UUID, reason: str | None
) -> None:
    """Ban (or re-ban, with the new reason)."""
    await conn.execute(
        """
        INSERT INTO bans (server_id, user_id, banned_by, reason) VALUES ($1, $2, $3, $4)
        ON CONFLICT (server_id, user_id)
        DO UPDATE SET banned_by = EXCLUDED.banned_by, reason = EXCLUDED.reason
        """,
        server_id,
        user_id,
        banned_by,
        reason,
    )


async def delete_ban(conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM bans WHERE server_id = $1 AND user_id = $2 RETURNING true",
            server_id,
            user_id,
        )
    )


async def is_banned(conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT true FROM bans WHERE server_id = $1 AND user_id = $2", server_id, user_id
        )
    )


async def list_bans(
    conn: asyncpg.Connection, *, server_id: UUID, after: UUID | None, limit: int
) -> list[BanRow]:
    """A page of the server's bans, by user id."""
    records = await conn.fetch(
        f"""
        SELECT {BAN_COLUMNS} FROM bans
        -- (a bound of the key, whatever the plan, as list_members' is: the OR was a
        -- filter of a generic plan, every page walking the bans before it)
        WHERE server_id = $1
          AND user_id > COALESCE($2::uuid, '00000000-0000-0000-0000-000000000000')
        ORDER BY user_id LIMIT $3
        """,
        server_id,
        after,
        limit,
    )
    return many(BanRow, records)
