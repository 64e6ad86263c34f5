from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one

CHANNEL_COLUMNS = (
    "id, server_id, kind, name, topic, position, parent_id, owner_id, dm_user_low, dm_user_high, "
    "user_limit, rate_limit_per_user, last_seq, created_at, updated_at, permissions_synced"
)
CHANNEL_COLUMNS_OF_C = ", ".join("c." + c.strip() for c in CHANNEL_COLUMNS.split(","))


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
    permissions_synced: bool


@dataclass(frozen=True)
class OverrideRow:
    channel_id: UUID
    role_id: UUID | None
    user_id: UUID | None
    allow: int
    deny: int


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
    rate_limit_per_user: int = 0,
    user_limit: int | None = None,
) -> ChannelRow:
    low, high = sorted(dm_pair) if dm_pair else (None, None)
    record = await conn.fetchrow(
        f"""
        INSERT INTO channels (id, server_id, kind, name, topic, position, parent_id, owner_id,
                              dm_user_low, dm_user_high, rate_limit_per_user, user_limit)
        VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
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
        rate_limit_per_user,
        user_limit,
    )
    return one(ChannelRow, record)


async def lock_channels(
    conn: asyncpg.Connection, *, channel_ids: list[UUID], server_ids: list[UUID]
) -> None:
    """Lock these channels' rows, and those of every channel of these servers, FOR
    UPDATE, in id order, in one statement, as a change of who may see them does
    (db/queries/access.py's bump_access_versions)."""
    await conn.execute(
        """
        SELECT 1 FROM channels WHERE id = ANY($1::uuid[]) OR server_id = ANY($2::uuid[])
        ORDER BY id FOR UPDATE
        """,
        channel_ids,
        server_ids,
    )


async def key_share_channel(conn: asyncpg.Connection, *, channel_id: UUID) -> bool:
    """Lock the channel's row FOR KEY SHARE until the transaction ends (its deletion
    waits for it, as for a send); False if it is gone."""
    return bool(
        await conn.fetchval("SELECT true FROM channels WHERE id = $1 FOR KEY SHARE", channel_id)
    )


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
    """Create the pair's direct conversation, opened by `user_a`; None if it already
    exists."""
    low, high = sorted((user_a, user_b))
    record = await conn.fetchrow(
        f"""
        INSERT INTO channels (kind, dm_user_low, dm_user_high, opened_by)
        VALUES ('direct', $1, $2, $3)
        ON CONFLICT (dm_user_low, dm_user_high) WHERE kind = 'direct' DO NOTHING
        RETURNING {CHANNEL_COLUMNS}
        """,
        low,
        high,
        user_a,
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


async def list_server_channels(conn: asyncpg.Connection, *, server_id: UUID) -> list[ChannelRow]:
    """A server's channels in display order (position, then age)."""
    records = await conn.fetch(
        f"""
        SELECT {CHANNEL_COLUMNS} FROM channels WHERE server_id = $1
        ORDER BY position, created_at, id
        """,
        server_id,
    )
    return many(ChannelRow, records)


async def list_channels_of_servers(
    conn: asyncpg.Connection, *, server_ids: list[UUID]
) -> list[ChannelRow]:
    """The channels of several servers, each server's in display order."""
    records = await conn.fetch(
        f"""
        SELECT {CHANNEL_COLUMNS} FROM channels WHERE server_id = ANY($1::uuid[])
        ORDER BY server_id, position, created_at, id
        """,
        server_ids,
    )
    return many(ChannelRow, records)


async def list_channels_overriding_role(
    conn: asyncpg.Connection, *, role_id: UUID
) -> list[ChannelRow]:
    """The channels that hold an override for this role."""
    records = await conn.fetch(
        f"""
        SELECT {CHANNEL_COLUMNS} FROM channels
        WHERE id IN (SELECT channel_id FROM channel_permission_overrides WHERE role_id = $1)
        ORDER BY position, created_at, id
        """,
        role_id,
    )
    return many(ChannelRow, records)


async def count_server_channels(conn: asyncpg.Connection, *, server_id: UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM channels WHERE server_id = $1", server_id))


async def update_channel(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    name: str | None = None,
    topic: str | None = None,
    clear_topic: bool = False,
    position: int | None = None,
    parent_id: UUID | None = None,
    clear_parent: bool = False,
    rate_limit_per_user: int | None = None,
    user_limit: int | None = None,
    clear_user_limit: bool = False,
    permissions_synced: bool | None = None,
) -> ChannelRow | None:
    """Change the given fields (None keeps one, unless its clear flag is set)."""
    record = await conn.fetchrow(
        f"""
        UPDATE channels SET
            name = COALESCE($2, name),
            topic = CASE WHEN $4 THEN NULL ELSE COALESCE($3, topic) END,
            position = COALESCE($5, position),
            parent_id = CASE WHEN $7 THEN NULL ELSE COALESCE($6, parent_id) END,
            rate_limit_per_user = COALESCE($8, rate_limit_per_user),
            user_limit = CASE WHEN $10 THEN NULL ELSE COALESCE($9, user_limit) END,
            permissions_synced = COALESCE($11, permissions_synced),
            updated_at = now()
        WHERE id = $1
        RETURNING {CHANNEL_COLUMNS}
        """,
        channel_id,
        name,
        topic,
        clear_topic,
        position,
        parent_id,
        clear_parent,
        rate_limit_per_user,
        user_limit,
        clear_user_limit,
        permissions_synced,
    )
    return maybe(ChannelRow, record)


async def update_channel_positions(
    conn: asyncpg.Connection, *, server_id: UUID, channel_ids: list[UUID], positions: list[int]
) -> list[ChannelRow]:
    """Set several channels' positions at once (only channels of this server)."""
    records = await conn.fetch(
        f"""
        UPDATE channels c SET position = p.position, updated_at = now()
        FROM unnest($2::uuid[], $3::int[]) AS p(id, position)
        WHERE c.id = p.id AND c.server_id = $1
        RETURNING {CHANNEL_COLUMNS_OF_C}
        """,
        server_id,
        channel_ids,
        positions,
    )
    return many(ChannelRow, records)


async def delete_channel(conn: asyncpg.Connection, *, channel_id: UUID) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM channels WHERE id = $1 RETURNING true", channel_id)
    )


async def delete_channels(conn: asyncpg.Connection, *, channel_ids: list[UUID]) -> None:
    await conn.execute("DELETE FROM channels WHERE id = ANY($1::uuid[])", channel_ids)


async def list_overrides(conn: asyncpg.Connection, *, channel_ids: list[UUID]) -> list[OverrideRow]:
    records = await conn.fetch(
        """
        SELECT channel_id, role_id, user_id, allow, deny FROM channel_permission_overrides
        WHERE channel_id = ANY($1::uuid[])
        ORDER BY channel_id, role_id NULLS LAST, user_id
        """,
        channel_ids,
    )
    return many(OverrideRow, records)


async def count_shown_overrides(conn: asyncpg.Connection, *, server_id: UUID) -> int:
    """How many overrides the server's channels show: each its own, and each channel
    following a category that category's again (its `category_overrides`)."""
    return int(
        await conn.fetchval(
            """
            SELECT (SELECT count(*) FROM channel_permission_overrides o
                    JOIN channels c ON c.id = o.channel_id WHERE c.server_id = $1)
                 + (SELECT count(*) FROM channels f
                    JOIN channel_permission_overrides o ON o.channel_id = f.parent_id
                    WHERE f.server_id = $1 AND f.permissions_synced)
            """,
            server_id,
        )
    )


async def count_server_overrides(conn: asyncpg.Connection, *, server_id: UUID) -> int:
    """How many overrides the server's channels hold, all together."""
    return int(
        await conn.fetchval(
            """
            SELECT count(*) FROM channel_permission_overrides o
            JOIN channels c ON c.id = o.channel_id WHERE c.server_id = $1
            """,
            server_id,
        )
    )


async def delete_permission_override(
    conn: asyncpg.Connection, *, channel_id: UUID, role_id: UUID | None, user_id: UUID | None
) -> bool:
    return bool(
        await conn.fetchval(
            """
            DELETE FROM channel_permission_overrides
            WHERE channel_id = $1 AND role_id IS NOT DISTINCT FROM $2
              AND user_id IS NOT DISTINCT FROM $3
            RETURNING true
            """,
            channel_id,
            role_id,
            user_id,
        )
    )


async def update_channels_unsynced(conn: asyncpg.Connection, *, channel_ids: list[UUID]) -> None:
    """These channels follow their category's overrides no more."""
    await conn.execute(
        "UPDATE channels SET permissions_synced = false, updated_at = now() WHERE id = ANY($1::uuid[])",
        channel_ids,
    )
