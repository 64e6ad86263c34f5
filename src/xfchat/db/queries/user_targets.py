"""What a user keeps about one channel or server they see, a row per target: their
mutes (mutes.py) and notification settings (notification_settings.py). Leaving a server
or a conversation takes both at once."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def delete_channel_targets(
    conn: asyncpg.Connection, *, user_id: UUID, channel_ids: list[UUID]
) -> None:
    """The user's mutes and notification settings of these channels."""
    await conn.execute(
        """
        WITH mutes AS (
            DELETE FROM mutes WHERE user_id = $1 AND target_id = ANY($2::uuid[])
        )
        DELETE FROM notification_settings WHERE user_id = $1 AND target_id = ANY($2::uuid[])
        """,
        user_id,
        channel_ids,
    )


async def delete_server_targets(
    conn: asyncpg.Connection, *, user_id: UUID, server_ids: list[UUID]
) -> None:
    """The user's mutes and notification settings of these servers and their channels."""
    await conn.execute(
        """
        WITH targets AS (
            SELECT unnest($2::uuid[]) AS id
            UNION ALL
            SELECT id FROM channels WHERE server_id = ANY($2::uuid[])
        ), mutes AS (
            DELETE FROM mutes WHERE user_id = $1 AND target_id IN (SELECT id FROM targets)
        )
        DELETE FROM notification_settings
        WHERE user_id = $1 AND target_id IN (SELECT id FROM targets)
        """,
        user_id,
        server_ids,
    )
