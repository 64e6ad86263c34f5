from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# NOTIFY payloads are limited to 8000 bytes. A transaction's events for a stream are
# spread over as many notifications as it takes; an event too big for one on its own is
# announced without its body, and listeners read it from the events table.
INLINE_DATA_LIMIT = 7600


def notification_chunks(
    types: list[str], datas: list[str]
) -> tuple[list[str], list[int], list[int]]:
    """Split events into notification bodies: (JSON arrays of [type, data] items, or ""
    for one event too big to carry; the 1-based index of each chunk's last event; the
    number of events in each chunk)."""
    bodies: list[str] = []
    lasts: list[int] = []
    counts: list[int] = []
    items: list[str] = []
    size = 0

    def close(last: int) -> None:
        nonlocal items, size
        if items:
            bodies.append("[" + ",".join(items) + "]")
            lasts.append(last)
            counts.append(len(items))
            items, size = [], 0

    for index, (event_type, data) in enumerate(zip(types, datas, strict=True), 1):
        item = f'["{event_type}",{data}]'
        # The limit is in bytes, not characters; and room for a sequence number that may
        # replace a placeholder in the body.
        length = len(item.encode()) + 20
        if length + 200 > INLINE_DATA_LIMIT:  # too big even alone
            close(index - 1)
            bodies.append("")
            lasts.append(index)
            counts.append(1)
            continue
        if size + length + 200 > INLINE_DATA_LIMIT:
            close(index - 1)
        items.append(item)
        size += length + 1
    close(len(types))
    return bodies, lasts, counts


def notification_chunk_ids(types: list[str], datas: list[str]) -> tuple[list[int], list[bool]]:
    """The same split as notification_chunks, as each event's 1-based chunk number and
    whether each chunk carries its events (for statements that build the bodies)."""
    bodies, _, counts = notification_chunks(types, datas)
    chunk_of: list[int] = []
    for number, count in enumerate(counts, 1):
        chunk_of += [number] * count
    return chunk_of, [body != "" for body in bodies]


# The payload of one notification, as a SQL expression; every statement that appends
# events builds its notifications with it (the hub parses exactly this). Its parts are
# SQL expressions: the stream's id, kind (text) and entity (uuid as text), the position
# of the chunk's last event, the chunk's event count and body ('' for an event too big
# to carry).
NOTIFICATION = """'{{"s":' || {stream} || ',"k":"' || {kind} || '","e":"' || {entity}
              || '","p":' || ({pos}) || ',"n":' || {count}
              || CASE WHEN {body} <> '' THEN ',"ev":' || {body} ELSE '' END || '}}'"""


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


_INSERT_EVENTS = (
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
        SELECT s.id AS stream_id, s.last_pos, pg_notify($6::text, """
    + NOTIFICATION.format(
        stream="s.id",
        kind="$1::text",
        entity="$2::uuid::text",
        pos="s.last_pos - $3 + c.last_index",
        count="c.n",
        body="c.body",
    )
    + """)
        FROM s, unnest($7::text[], $8::int[], $9::int[]) AS c(body, last_index, n)
"""
)


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
    counter row until the caller's transaction ends), store them, and queue the
    notifications that PostgreSQL delivers only if and when that transaction commits.

    A notification is `{"s": stream_id, "k": kind, "e": entity, "p": last position,
    "n": count, "ev": [[type, data], ...]}` ("ev" left out for an event too big to carry;
    listeners then read it from the table). Returns the stream and the last position
    (the events hold last-n+1 .. last, in order)."""
    bodies, lasts, counts = notification_chunks(types, datas)
    rows = await conn.fetch(
        _INSERT_EVENTS, kind, entity_id, len(types), types, datas, channel, bodies, lasts, counts
    )
    return EventPosition(rows[0]["stream_id"], rows[0]["last_pos"])


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


async def streams_with_old_events(
    conn: asyncpg.Connection, *, older_than_s: float, limit: int
) -> list[int]:
    records = await conn.fetch(
        """
        SELECT DISTINCT stream_id FROM events
        WHERE created_at < now() - make_interval(secs => $1) LIMIT $2
        """,
        older_than_s,
        limit,
    )
    return [r["stream_id"] for r in records]


async def prune_stream(conn: asyncpg.Connection, *, stream_id: int, older_than_s: float) -> int:
    """Delete one stream's events older than the retention and record the highest
    position removed (a resume from before it then gets a resync). One stream per
    statement: pruning never holds two streams' counter rows, so it cannot deadlock with
    writers that lock several."""
    record = await conn.fetchrow(
        """
        WITH gone AS (
            DELETE FROM events
            WHERE stream_id = $1 AND created_at < now() - make_interval(secs => $2)
            RETURNING pos
        ), mark AS (
            UPDATE event_streams SET pruned_through = GREATEST(pruned_through,
                                                               (SELECT max(pos) FROM gone))
            WHERE id = $1 AND EXISTS (SELECT 1 FROM gone)
        )
        SELECT count(*) AS removed FROM gone
        """,
        stream_id,
        older_than_s,
    )
    return int(record["removed"]) if record else 0


async def list_event_data_after(
    conn: asyncpg.Connection, *, kind: str, entity_id: UUID, after: int, type: str
) -> list[dict[str, Any]]:
    """The data of one stream's events of one type after a position (within retention)."""
    records = await conn.fetch(
        """
        SELECT e.data FROM events e JOIN event_streams s ON s.id = e.stream_id
        WHERE s.kind = $1 AND s.entity_id = $2 AND e.pos > $3 AND e.type = $4
        ORDER BY e.pos
        """,
        kind,
        entity_id,
        after,
        type,
    )
    return [r["data"] for r in records]


async def scrub_message_events(
    conn: asyncpg.Connection, *, channel_id: UUID, message_id: UUID
) -> int:
    """Empty the text of a deleted message in the events that carried it."""
    result = await conn.execute(
        """
        UPDATE events e
        SET data = jsonb_set(jsonb_set(e.data, '{content}', '""'), '{deleted}', 'true')
        FROM event_streams s
        WHERE s.id = e.stream_id AND s.kind = 'channel' AND s.entity_id = $1
          AND e.type IN ('message.created', 'message.updated') AND e.data ->> 'id' = $2
        """,
        channel_id,
        str(message_id),
    )
    return int(result.split()[-1])
