from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# NOTIFY payloads are limited to 8000 bytes; larger event bodies are left out of the
# notification and read from the events table by the listener.
INLINE_DATA_LIMIT = 7000


@dataclass(frozen=True)
class EventPosition:
    stream_id: int
    pos: int


@dataclass(frozen=True)
class StreamRow:
    id: int
    kind: str
    entity_id: UUID
    last_pos: int
    pruned_through: int


@dataclass(frozen=True)
class EventRow:
    stream_id: int
    pos: int
    type: str
    data: dict[str, Any]
    created_at: datetime


async def insert_event(
    conn: asyncpg.Connection, *, kind: str, entity_id: UUID, type: str, data_json: str, channel: str
) -> EventPosition:
    """Append one event: take the stream's next position (locking its counter row until
    the caller's transaction ends), store the event, and queue a NOTIFY that PostgreSQL
    delivers only if and when that transaction commits."""
    row = await conn.fetchrow(
        """
        WITH s AS (
            INSERT INTO event_streams AS es (kind, entity_id, last_pos) VALUES ($1, $2, 1)
            ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos + 1
            RETURNING id, last_pos
        ), e AS (
            INSERT INTO events (stream_id, pos, type, data)
            SELECT id, last_pos, $3, $4::text::jsonb FROM s
            RETURNING stream_id, pos
        )
        SELECT e.stream_id, e.pos, pg_notify(
            $5::text,
            '{"s":' || e.stream_id || ',"p":' || e.pos || ',"k":"' || $1::text
              || '","e":"' || $2::uuid::text || '","t":"' || $3::text || '"'
              || CASE WHEN octet_length($4::text) <= $6::int THEN ',"d":' || $4::text ELSE '' END
              || '}'
        )
        FROM e
        """,
        kind,
        entity_id,
        type,
        data_json,
        channel,
        INLINE_DATA_LIMIT,
    )
    assert row is not None
    return EventPosition(row["stream_id"], row["pos"])


async def notify(conn: asyncpg.Connection, *, channel: str, payload: str) -> None:
    await conn.execute("SELECT pg_notify($1::text, $2::text)", channel, payload)


async def list_events_after(
    conn: asyncpg.Connection, *, stream_id: int, after: int, limit: int
) -> list[EventRow]:
    rows = await conn.fetch(
        """
        SELECT stream_id, pos, type, data, created_at FROM events
        WHERE stream_id = $1 AND pos > $2 ORDER BY pos LIMIT $3
        """,
        stream_id,
        after,
        limit,
    )
    return [EventRow(**dict(r)) for r in rows]


async def list_streams(
    conn: asyncpg.Connection, *, kinds: list[str], entity_ids: list[UUID]
) -> list[StreamRow]:
    """The streams for the given (kind, entity) pairs that exist so far."""
    rows = await conn.fetch(
        """
        SELECT s.id, s.kind, s.entity_id, s.last_pos, s.pruned_through
        FROM unnest($1::text[], $2::uuid[]) AS w(kind, entity_id)
        JOIN event_streams s USING (kind, entity_id)
        """,
        kinds,
        entity_ids,
    )
    return [StreamRow(**dict(r)) for r in rows]
