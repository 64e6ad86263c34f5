"""Presence: server processes that are alive (they touch their row every few seconds)
and the users connected to each."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import many


@dataclass(frozen=True)
class PresenceRow:
    user_id: UUID
    status: str  # the status the user chose
    status_text: str | None
    connected: bool  # on some live process


async def touch_process(conn: asyncpg.Connection, *, process_id: UUID) -> bool:
    """Mark the process alive; False if its row is gone (it was swept, or the database
    lost its unlogged tables), and then it is registered anew."""
    updated = await conn.fetchval(
        "UPDATE presence_processes SET seen_at = now() WHERE id = $1 RETURNING true", process_id
    )
    if updated:
        return True
    await conn.execute(
        "INSERT INTO presence_processes (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET seen_at = now()",
        process_id,
    )
    return False


async def delete_process(conn: asyncpg.Connection, *, process_id: UUID) -> list[UUID]:
    """Forget a process and its connections; the users it held."""
    records = await conn.fetch(
        """
        WITH gone AS (DELETE FROM presence_connections WHERE process_id = $1 RETURNING user_id),
             p AS (DELETE FROM presence_processes WHERE id = $1)
        SELECT user_id FROM gone
        """,
        process_id,
    )
    return [r["user_id"] for r in records]


async def delete_dead_processes(conn: asyncpg.Connection, *, timeout_s: float) -> list[UUID]:
    """Forget every process not seen for `timeout_s` (it crashed or lost the database),
    with its connections; the users they held."""
    records = await conn.fetch(
        """
        WITH dead AS (
            DELETE FROM presence_processes
            WHERE seen_at < now() - make_interval(secs => $1) RETURNING id
        ), gone AS (
            DELETE FROM presence_connections c USING dead WHERE c.process_id = dead.id
            RETURNING c.user_id
        )
        SELECT DISTINCT user_id FROM gone
        """,
        timeout_s,
    )
    return [r["user_id"] for r in records]


async def insert_connections(
    conn: asyncpg.Connection, *, process_id: UUID, user_ids: list[UUID]
) -> None:
    await conn.execute(
        """
        INSERT INTO presence_connections (process_id, user_id)
        SELECT $1, u.id FROM users u WHERE u.id = ANY($2::uuid[])  -- (not one deleted since)
        ON CONFLICT DO NOTHING
        """,
        process_id,
        user_ids,
    )


async def delete_connections(
    conn: asyncpg.Connection, *, process_id: UUID, user_ids: list[UUID]
) -> None:
    await conn.execute(
        "DELETE FROM presence_connections WHERE process_id = $1 AND user_id = ANY($2::uuid[])",
        process_id,
        user_ids,
    )


_PRESENCES = """
    SELECT u.id AS user_id, u.status, u.status_text,
           EXISTS (SELECT 1 FROM presence_connections c
                   JOIN presence_processes p ON p.id = c.process_id
                   WHERE c.user_id = u.id
                     AND p.seen_at >= now() - make_interval(secs => $2)) AS connected
    FROM users u WHERE u.id = ANY($1::uuid[])
"""


async def list_presences(
    conn: asyncpg.Connection, *, user_ids: list[UUID], timeout_s: float
) -> list[PresenceRow]:
    """These users' chosen status and whether a live process holds a connection of
    theirs (one seen within `timeout_s`)."""
    return many(PresenceRow, await conn.fetch(_PRESENCES, user_ids, timeout_s))


async def list_connected_presences(
    conn: asyncpg.Connection, *, user_ids: list[UUID], timeout_s: float
) -> list[PresenceRow]:
    """list_presences, only those connected, by user id."""
    records = await conn.fetch(
        f"SELECT * FROM ({_PRESENCES}) x WHERE x.connected ORDER BY x.user_id",
        user_ids,
        timeout_s,
    )
    return many(PresenceRow, records)


async def update_status(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    status: str | None,
    status_text: str | None,
    clear_status_text: bool,
) -> bool:
    """False if the account was deleted (its scrubbed row is never written again)."""
    updated = await conn.execute(
        """
        UPDATE users SET status = COALESCE($2, status),
               status_text = CASE WHEN $4 THEN NULL ELSE COALESCE($3, status_text) END,
               updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        """,
        user_id,
        status,
        status_text,
        clear_status_text,
    )
    return bool(updated != "UPDATE 0")
