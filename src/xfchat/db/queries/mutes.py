"""Mutes: one row per user and channel or server (migration 0038). A row whose
`muted_until` has passed is no mute: every read here filters by time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

LIVE = "(muted_until IS NULL OR muted_until > now())"
COLUMNS = (
    "CASE WHEN channel_id IS NULL THEN 'server' ELSE 'channel' END AS kind, target_id, muted_until"
)


@dataclass(frozen=True)
class MuteRow:
    kind: str  # channel (a server's text channel or a conversation) or server
    target_id: UUID
    muted_until: datetime | None  # None: until unmuted


def _row(record: asyncpg.Record) -> MuteRow:
    return MuteRow(record["kind"], record["target_id"], record["muted_until"])


async def list_mutes(conn: asyncpg.Connection, *, user_id: UUID) -> list[MuteRow]:
    """The user's mutes in force, in the order last set (a change sets it anew)."""
    records = await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM mutes WHERE user_id = $1 AND {LIVE}
        ORDER BY created_at, target_id
        """,
        user_id,
    )
    return [_row(r) for r in records]


async def count_mutes(conn: asyncpg.Connection, *, user_id: UUID) -> int:
    """The user's mutes in force."""
    return int(
        await conn.fetchval(f"SELECT count(*) FROM mutes WHERE user_id = $1 AND {LIVE}", user_id)
    )


async def get_mute(conn: asyncpg.Connection, *, user_id: UUID, target_id: UUID) -> MuteRow | None:
    """The user's mute of this channel or server, if in force."""
    record = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM mutes WHERE user_id = $1 AND target_id = $2 AND {LIVE}",
        user_id,
        target_id,
    )
    return _row(record) if record is not None else None


async def upsert_mute(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    channel_id: UUID | None,
    server_id: UUID | None,
    until: datetime | None,
) -> MuteRow:
    """Mute a channel or a server (one of the two ids), replacing any mute of it."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO mutes (user_id, channel_id, server_id, muted_until) VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id, target_id)
        DO UPDATE SET muted_until = EXCLUDED.muted_until, created_at = now()
        RETURNING {COLUMNS}
        """,
        user_id,
        channel_id,
        server_id,
        until,
    )
    assert record is not None
    return _row(record)


async def delete_mute(conn: asyncpg.Connection, *, user_id: UUID, target_id: UUID) -> bool:
    """Delete the user's mute of this channel or server; whether one was in force."""
    return bool(
        await conn.fetchval(
            f"""
            WITH gone AS (
                DELETE FROM mutes WHERE user_id = $1 AND target_id = $2 RETURNING muted_until
            )
            SELECT true FROM gone WHERE {LIVE}
            """,
            user_id,
            target_id,
        )
    )


async def delete_ended_mutes_of(conn: asyncpg.Connection, *, user_id: UUID) -> None:
    """The user's mutes whose time has passed."""
    await conn.execute("DELETE FROM mutes WHERE user_id = $1 AND muted_until <= now()", user_id)
