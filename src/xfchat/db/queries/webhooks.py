"""Incoming webhooks (migration 0064): their rows, and the webhook columns of messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe

WEBHOOK_COLUMNS = "id, server_id, channel_id, name, avatar_url, created_by, created_at"


@dataclass(frozen=True)
class WebhookRow:
    id: UUID
    server_id: UUID
    channel_id: UUID
    name: str
    avatar_url: str | None
    created_by: UUID | None
    created_at: datetime


@dataclass(frozen=True)
class WebhookSecretRow(WebhookRow):
    token_hash: bytes


async def insert_webhook(
    conn: asyncpg.Connection,
    *,
    webhook_id: UUID,
    server_id: UUID,
    channel_id: UUID,
    name: str,
    avatar_url: str | None,
    token_hash: bytes,
    created_by: UUID,
) -> WebhookRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO webhooks (id, server_id, channel_id, name, avatar_url, token_hash, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING {WEBHOOK_COLUMNS}
        """,
        webhook_id,
        server_id,
        channel_id,
        name,
        avatar_url,
        token_hash,
        created_by,
    )
    return WebhookRow(**dict(record))


async def get_webhook(
    conn: asyncpg.Connection, *, webhook_id: UUID, lock: bool = False, share: bool = False
) -> WebhookSecretRow | None:
    """The webhook with its token's hash; with `lock` FOR UPDATE (a change), with
    `share` FOR SHARE (an execution: a regeneration or deletion waits for it, or came
    first and is seen)."""
    suffix = " FOR UPDATE" if lock else " FOR SHARE" if share else ""
    record = await conn.fetchrow(
        f"SELECT {WEBHOOK_COLUMNS}, token_hash FROM webhooks WHERE id = $1" + suffix,
        webhook_id,
    )
    return maybe(WebhookSecretRow, record)


async def list_webhooks(conn: asyncpg.Connection, *, channel_ids: list[UUID]) -> list[WebhookRow]:
    """The webhooks of these channels, oldest first."""
    records = await conn.fetch(
        f"""
        SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE channel_id = ANY($1::uuid[])
        ORDER BY created_at, id
        """,
        channel_ids,
    )
    return many(WebhookRow, records)


async def count_webhooks(
    conn: asyncpg.Connection, *, server_id: UUID, channel_id: UUID
) -> tuple[int, int]:
    """How many webhooks the channel has, and the server."""
    record = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE channel_id = $2) AS in_channel, count(*) AS in_server
        FROM webhooks WHERE server_id = $1
        """,
        server_id,
        channel_id,
    )
    return int(record["in_channel"]), int(record["in_server"])


async def update_webhook(
    conn: asyncpg.Connection,
    *,
    webhook_id: UUID,
    name: str,
    avatar_url: str | None,
    channel_id: UUID,
) -> WebhookRow:
    record = await conn.fetchrow(
        f"""
        UPDATE webhooks SET name = $2, avatar_url = $3, channel_id = $4 WHERE id = $1
        RETURNING {WEBHOOK_COLUMNS}
        """,
        webhook_id,
        name,
        avatar_url,
        channel_id,
    )
    return WebhookRow(**dict(record))


async def update_webhook_token(
    conn: asyncpg.Connection, *, webhook_id: UUID, token_hash: bytes
) -> None:
    await conn.execute("UPDATE webhooks SET token_hash = $2 WHERE id = $1", webhook_id, token_hash)


async def delete_webhook(conn: asyncpg.Connection, *, webhook_id: UUID) -> None:
    await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)


async def set_message_webhooks(
    conn: asyncpg.Connection,
    *,
    message_ids: list[UUID],
    webhook_ids: list[UUID],
    names: list[str],
    avatar_urls: list[str | None],
) -> None:
    """Mark these just-inserted messages (same transaction) as these webhooks' posts,
    with the name and avatar each was posted with."""
    await conn.execute(
        """
        UPDATE messages m SET webhook_id = w.webhook_id, webhook_name = w.name,
                              webhook_avatar_url = w.avatar_url
        FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
             AS w(id, webhook_id, name, avatar_url)
        WHERE m.id = w.id
        """,
        message_ids,
        webhook_ids,
        names,
        avatar_urls,
    )


async def get_message_webhook(conn: asyncpg.Connection, *, message_id: UUID) -> bool:
    """Whether a webhook posted the message."""
    return bool(
        await conn.fetchval(
            "SELECT webhook_name IS NOT NULL FROM messages WHERE id = $1", message_id
        )
    )
