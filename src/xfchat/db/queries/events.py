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


async def insert_events(
    conn: asyncpg.Connection,
    *,
    kind: str,
    entity_id: UUID,
    types: list[str],
    datas: list[str],
    channel: str,
) -> EventPosition:
    """Append events to one stream: take its next len(types) positions (locking its
    counter row until the caller's transaction ends), store them, and queue ONE NOTIFY
    that PostgreSQL delivers only if and when that transaction commits.

    The notification is `{"s": stream_id, "k": kind, "e": entity, "p": last position,
    "n": count, "ev": [[type, data], ...]}`; "ev" is left out when it would not fit in a
    notification, and listeners then read the events from the table. Returns the stream
    and the last position (the events hold last-n+1 .. last, in order)."""
    batch = "[" + ",".join(f'["{t}",{d}]' for t, d in zip(types, datas, strict=True)) + "]"
    row = await conn.fetchrow(
        """
        WITH s AS (
            INSERT INTO event_streams AS es (kind, entity_id, last_pos) VALUES ($1, $2, $3)
            ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos + $3
            RETURNING id, last_pos
        ), e AS (
            INSERT INTO events (stream_id, pos, type, data)
            SELECT s.id, s.last_pos - $3 + t.ord, t.type, t.data::jsonb
            FROM s, unnest($4::text[], $5::text[]) WITH ORDINALITY AS t(type, data, ord)
        )
        SELECT s.id, s.last_pos, pg_notify(
            $6::text,
            '{"s":' || s.id || ',"k":"' || $1::text || '","e":"' || $2::uuid::text
              || '","p":' || s.last_pos || ',"n":' || $3::bigint
              || CASE WHEN octet_length($7::text) <= $8::int THEN ',"ev":' || $7::text ELSE '' END
              || '}'
        )
        FROM s
        """,
        kind,
        entity_id,
        len(types),
        types,
        datas,
        channel,
        batch,
        INLINE_DATA_LIMIT,
    )
    assert row is not None
    return EventPosition(row["id"], row["last_pos"])


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


async def ensure_streams(
    conn: asyncpg.Connection, *, kinds: list[str], entity_ids: list[UUID]
) -> list[StreamRow]:
    """The rows of these streams, created (empty) where missing, so that every stream a
    connection follows has an id its resume token can name."""
    await conn.execute(
        """
        INSERT INTO event_streams (kind, entity_id)
        SELECT * FROM unnest($1::text[], $2::uuid[]) ORDER BY 1, 2
        ON CONFLICT (kind, entity_id) DO NOTHING
        """,
        kinds,
        entity_ids,
    )
    return await list_streams(conn, kinds=kinds, entity_ids=entity_ids)


async def list_stream_heads(conn: asyncpg.Connection, *, stream_ids: list[int]) -> list[StreamRow]:
    records = await conn.fetch(
        """
        SELECT id, kind, entity_id, last_pos, pruned_through FROM event_streams
        WHERE id = ANY($1::bigint[])
        """,
        stream_ids,
    )
    return [StreamRow(**dict(r)) for r in records]


async def get_stream_head(conn: asyncpg.Connection, *, kind: str, entity_id: UUID) -> int:
    """The stream's last position (0 if it has none yet)."""
    value = await conn.fetchval(
        "SELECT last_pos FROM event_streams WHERE kind = $1 AND entity_id = $2", kind, entity_id
    )
    return int(value or 0)


async def prune_events(conn: asyncpg.Connection, *, older_than_s: float, batch: int) -> int:
    """Delete up to `batch` events older than the retention period and record, per
    stream, the highest position removed (a resume from before it needs a resync)."""
    record = await conn.fetchrow(
        """
        WITH gone AS (
            DELETE FROM events WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM events
                WHERE created_at < now() - make_interval(secs => $1)
                LIMIT $2))
            RETURNING stream_id, pos
        ), marks AS (
            UPDATE event_streams s SET pruned_through = GREATEST(s.pruned_through, g.max_pos)
            FROM (SELECT stream_id, max(pos) AS max_pos FROM gone GROUP BY stream_id) g
            WHERE s.id = g.stream_id
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone) AS removed
        """,
        older_than_s,
        batch,
    )
    return int(record["removed"]) if record else 0
