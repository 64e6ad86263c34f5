"""Notification settings: one row per user and channel or server (migration 0062)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

COLUMNS = (
    "CASE WHEN channel_id IS NULL THEN 'server' ELSE 'channel' END AS kind, target_id,"
    " level, suppress_everyone"
)


@dataclass(frozen=True)
class NotificationSettingRow:
    kind: str  # channel (a server's text channel or a conversation) or server
    target_id: UUID
    level: str  # all, mentions, nothing
    suppress_everyone: bool  # (false for a channel)


def _row(record: asyncpg.Record) -> NotificationSettingRow:
    return NotificationSettingRow(
        record["kind"], record["target_id"], record["level"], record["suppress_everyone"]
    )


async def list_notification_settings(
    conn: asyncpg.Connection, *, user_id: UUID
) -> list[NotificationSettingRow]:
    """The user's settings, in the order last set (a change sets it anew)."""
    records = await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM notification_settings WHERE user_id = $1
        ORDER BY created_at, target_id
        """,
        user_id,
    )
    return [_row(r) for r in records]


async def count_notification_settings(conn: asyncpg.Connection, *, user_id: UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM notification_settings WHERE user_id = $1", user_id
        )
    )


async def get_notification_setting(
    conn: asyncpg.Connection, *, user_id: UUID, target_id: UUID
) -> NotificationSettingRow | None:
    record = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM notification_settings WHERE user_id = $1 AND target_id = $2",
        user_id,
        target_id,
    )
    return _row(record) if record is not None else None


async def upsert_notification_setting(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    channel_id: UUID | None,
    server_id: UUID | None,
    level: str,
    suppress_everyone: bool,
) -> NotificationSettingRow:
    """Set a channel's or a server's (one of the two ids), replacing any setting of it."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO notification_settings (user_id, channel_id, server_id, level, suppress_everyone)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id, target_id) DO UPDATE SET
            level = EXCLUDED.level, suppress_everyone = EXCLUDED.suppress_everyone,
            created_at = now()
        RETURNING {COLUMNS}
        """,
        user_id,
        channel_id,
        server_id,
        level,
        suppress_everyone,
    )
    assert record is not None
    return _row(record)


async def delete_notification_setting(
    conn: asyncpg.Connection, *, user_id: UUID, target_id: UUID
) -> bool:
    """Delete the user's setting of this channel or server; whether there was one."""
    return (
        await conn.fetchval(
            "DELETE FROM notification_settings WHERE user_id = $1 AND target_id = $2 RETURNING true",
            user_id,
            target_id,
        )
        is not None
    )
