from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one
from xfchat.db.queries.events import notification_chunk_ids

MESSAGE_COLUMNS = (
    "id, channel_id, seq, author_id, kind, content, nonce, reply_to_id, mentions, "
    "mention_everyone, created_at, edited_at, deleted_at"
)
MESSAGE_COLUMNS_M = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
# A message as readers see it: its author's public fields and its reactions summed up
# (`me` says whether the viewer, $1 in every query that uses this, reacted).
MESSAGE_VIEW = f"""
    SELECT {MESSAGE_COLUMNS_M},
           u.username AS author_username, u.display_name AS author_display_name,
           u.avatar_url AS author_avatar_url,
           COALESCE((
               SELECT json_agg(json_build_object('emoji', r.emoji, 'count', r.n, 'me', r.me)
                               ORDER BY r.first)
               FROM (SELECT emoji, count(*) AS n, bool_or(user_id = $1) AS me,
                            min(created_at) AS first
                     FROM reactions WHERE message_id = m.id GROUP BY emoji) r
           ), '[]'::json) AS reactions
    FROM messages m LEFT JOIN users u ON u.id = m.author_id
"""


@dataclass(frozen=True)
class MessageRow:
    id: UUID
    channel_id: UUID
    seq: int
    author_id: UUID | None
    kind: str
    content: str
    nonce: str | None
    reply_to_id: UUID | None
    mentions: list[UUID]
    mention_everyone: bool
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class MessageViewRow(MessageRow):
    author_username: str | None
    author_display_name: str | None
    author_avatar_url: str | None
    reactions: list[dict[str, Any]]


@dataclass(frozen=True)
class EditRow:
    content: str
    written_at: datetime
    replaced_at: datetime


@dataclass(frozen=True)
class ReadStateRow:
    user_id: UUID
    last_read_seq: int
    updated_at: datetime


async def insert_message(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    channel_id: UUID,
    author_id: UUID | None,
    content: str,
    nonce: str | None = None,
    reply_to_id: UUID | None = None,
    mentions: list[UUID] | None = None,
) -> MessageRow:
    """Insert one message at the channel's next sequence number, without an event (the
    demo data; sends go through insert_messages_and_events)."""
    record = await conn.fetchrow(
        f"""
        WITH c AS (
            UPDATE channels SET last_seq = last_seq + 1 WHERE id = $2 RETURNING last_seq
        )
        INSERT INTO messages (id, channel_id, seq, author_id, content, nonce, reply_to_id, mentions)
        SELECT $1, $2, c.last_seq, $3, $4, $5, $6, $7 FROM c
        RETURNING {MESSAGE_COLUMNS}
        """,
        message_id,
        channel_id,
        author_id,
        content,
        nonce,
        reply_to_id,
        mentions or [],
    )
    return one(MessageRow, record)


_LIST_NEWEST = MESSAGE_VIEW + " WHERE m.channel_id = $2 ORDER BY m.seq DESC LIMIT $3"
_LIST_BEFORE = MESSAGE_VIEW + " WHERE m.channel_id = $2 AND m.seq < $4 ORDER BY m.seq DESC LIMIT $3"
_LIST_AFTER = MESSAGE_VIEW + " WHERE m.channel_id = $2 AND m.seq > $4 ORDER BY m.seq ASC LIMIT $3"


async def list_messages(
    conn: asyncpg.Connection,
    *,
    viewer: UUID,
    channel_id: UUID,
    limit: int,
    before: int | None = None,
    after: int | None = None,
) -> list[MessageViewRow]:
    """Newest first (no cursor, or `before`), or oldest first (`after`)."""
    if after is not None:
        records = await conn.fetch(_LIST_AFTER, viewer, channel_id, limit, after)
    elif before is not None:
        records = await conn.fetch(_LIST_BEFORE, viewer, channel_id, limit, before)
    else:
        records = await conn.fetch(_LIST_NEWEST, viewer, channel_id, limit)
    return many(MessageViewRow, records)


async def list_message_views(
    conn: asyncpg.Connection, *, viewer: UUID | None, ids: list[UUID]
) -> list[MessageViewRow]:
    records = await conn.fetch(
        MESSAGE_VIEW + " WHERE m.id = ANY($2::uuid[]) ORDER BY m.seq", viewer, ids
    )
    return many(MessageViewRow, records)


async def get_message_view(
    conn: asyncpg.Connection, *, viewer: UUID, channel_id: UUID, message_id: UUID
) -> MessageViewRow | None:
    record = await conn.fetchrow(
        MESSAGE_VIEW + " WHERE m.id = $2 AND m.channel_id = $3", viewer, message_id, channel_id
    )
    return maybe(MessageViewRow, record)


async def get_message_for_update(
    conn: asyncpg.Connection, *, channel_id: UUID, message_id: UUID
) -> MessageRow | None:
    record = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND channel_id = $2 FOR UPDATE",
        message_id,
        channel_id,
    )
    return maybe(MessageRow, record)


async def get_message_seq(
    conn: asyncpg.Connection, *, channel_id: UUID, message_id: UUID
) -> int | None:
    value = await conn.fetchval(
        "SELECT seq FROM messages WHERE id = $1 AND channel_id = $2", message_id, channel_id
    )
    return None if value is None else int(value)


async def update_message_content(
    conn: asyncpg.Connection, *, message_id: UUID, content: str, mentions: list[UUID]
) -> MessageRow:
    """Keep the current version in message_edits, then replace it."""
    await conn.execute(
        """
        INSERT INTO message_edits (message_id, content, written_at)
        SELECT id, content, COALESCE(edited_at, created_at) FROM messages WHERE id = $1
        """,
        message_id,
    )
    record = await conn.fetchrow(
        f"""
        UPDATE messages SET content = $2, mentions = $3, edited_at = now() WHERE id = $1
        RETURNING {MESSAGE_COLUMNS}
        """,
        message_id,
        content,
        mentions,
    )
    return one(MessageRow, record)


async def soft_delete_message(
    conn: asyncpg.Connection, *, message_id: UUID, deleted_by: UUID
) -> None:
    """Empty the message and forget its earlier versions; the row stays as a tombstone
    (its sequence number, author and times) so history has no hole."""
    await conn.execute("DELETE FROM message_edits WHERE message_id = $1", message_id)
    await conn.execute("DELETE FROM reactions WHERE message_id = $1", message_id)
    await conn.execute(
        """
        UPDATE messages SET content = '', mentions = '{}', mention_everyone = false,
               deleted_at = now(), deleted_by = $2
        WHERE id = $1
        """,
        message_id,
        deleted_by,
    )


async def list_edits(conn: asyncpg.Connection, *, message_id: UUID) -> list[EditRow]:
    records = await conn.fetch(
        "SELECT content, written_at, replaced_at FROM message_edits WHERE message_id = $1 ORDER BY id",
        message_id,
    )
    return many(EditRow, records)


async def insert_reaction(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID, emoji: str
) -> bool:
    return bool(
        await conn.fetchval(
            """
        INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING true
        """,
            message_id,
            user_id,
            emoji,
        )
    )


async def delete_reaction(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID, emoji: str
) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3 RETURNING true",
            message_id,
            user_id,
            emoji,
        )
    )


async def count_messages(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel_id)
    )


async def get_last_seq(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(await conn.fetchval("SELECT last_seq FROM channels WHERE id = $1", channel_id) or 0)


async def upsert_read_state(
    conn: asyncpg.Connection, *, user_id: UUID, channel_id: UUID, seq: int
) -> ReadStateRow:
    record = await conn.fetchrow(
        """
        INSERT INTO read_states AS r (user_id, channel_id, last_read_seq) VALUES ($1, $2, $3)
        ON CONFLICT (user_id, channel_id) DO UPDATE SET last_read_seq = $3, updated_at = now()
        RETURNING user_id, last_read_seq, updated_at
        """,
        user_id,
        channel_id,
        seq,
    )
    return one(ReadStateRow, record)


async def list_read_states(conn: asyncpg.Connection, *, channel_id: UUID) -> list[ReadStateRow]:
    records = await conn.fetch(
        """
        SELECT r.user_id, r.last_read_seq, r.updated_at FROM read_states r
        JOIN conversation_participants p ON p.channel_id = r.channel_id AND p.user_id = r.user_id
        WHERE r.channel_id = $1 ORDER BY r.user_id
        """,
        channel_id,
    )
    return many(ReadStateRow, records)


@dataclass(frozen=True)
class SendBatchState:
    """What writing a batch of sends to one conversation needs, read (and locked) in
    one round trip."""

    kind: str
    now: datetime  # the transaction's timestamp: every message of the batch gets it
    blocked: bool  # a direct conversation whose two people have a block between them
    allowed: list[UUID]  # of the authors asked about, those who take part
    replyable: list[UUID]  # of the reply targets asked about, live messages of this channel
    mentionable: list[UUID]  # of the mentioned users asked about, those who take part
    existing: list[dict[str, Any]]  # messages already holding one of the ids or nonces
    bucket_hits: list[int]  # each rate-limit bucket's count after this batch
    bucket_ends: list[datetime]  # ... and when its window ends


async def prepare_send_batch(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    authors: list[UUID],
    reply_ids: list[UUID],
    mentioned: list[UUID],
    ids: list[UUID],
    nonce_authors: list[UUID],
    nonces: list[str],
    buckets: list[str],
    periods: list[int],
    counts: list[int],
) -> SendBatchState | None:
    """Check access, reply targets and mentions, find earlier sends with these ids or
    nonces, and count the batch in its rate-limit buckets (`counts[i]` hits in
    `buckets[i]`, sorted by bucket so concurrent batches lock in one order) -- in the
    caller's transaction, in one round trip. The conversation's row is share-locked
    (FOR KEY SHARE): sends do not wait for each other, but a change of participants
    (which takes FOR UPDATE) waits for this transaction, and this one for it. The message
    counter is left to the write, so it stays locked as briefly as possible.
    None if there is no such conversation."""
    record = await conn.fetchrow(
        """
        WITH c AS (
            SELECT id, kind, dm_user_low, dm_user_high FROM channels
            WHERE id = $1 AND server_id IS NULL FOR KEY SHARE
        ), t AS (SELECT clock_timestamp() AS clock),
        w AS (
            SELECT b.bucket, b.period, b.n, b.ord,
                   to_timestamp(floor(extract(epoch FROM t.clock) / b.period) * b.period) AS start
            FROM t, unnest($8::text[], $9::int[], $10::int[]) WITH ORDINALITY AS b(bucket, period, n, ord)
        ), hits AS (
            INSERT INTO rate_limits AS r (bucket, window_start, expires_at, hits)
            SELECT bucket, start, start + make_interval(secs => period), n FROM w ORDER BY bucket
            ON CONFLICT (bucket) DO UPDATE SET
                hits = CASE WHEN r.window_start = EXCLUDED.window_start
                            THEN r.hits + EXCLUDED.hits ELSE EXCLUDED.hits END,
                window_start = EXCLUDED.window_start,
                expires_at = EXCLUDED.expires_at
            RETURNING bucket, hits, expires_at
        )
        SELECT c.kind, now() AS now,
               (c.kind = 'direct' AND EXISTS (
                    SELECT 1 FROM blocks b
                    WHERE (b.blocker_id = c.dm_user_low AND b.blocked_id = c.dm_user_high)
                       OR (b.blocker_id = c.dm_user_high AND b.blocked_id = c.dm_user_low)
               )) AS blocked,
               ARRAY(SELECT user_id FROM conversation_participants
                     WHERE channel_id = c.id AND user_id = ANY($2::uuid[])) AS allowed,
               ARRAY(SELECT id FROM messages
                     WHERE channel_id = c.id AND id = ANY($3::uuid[]) AND deleted_at IS NULL
                    ) AS replyable,
               ARRAY(SELECT user_id FROM conversation_participants
                     WHERE channel_id = c.id AND user_id = ANY($4::uuid[])) AS mentionable,
               COALESCE((
                   SELECT json_agg(json_build_object(
                       'id', m.id, 'channel_id', m.channel_id, 'author_id', m.author_id,
                       'content', m.content, 'reply_to_id', m.reply_to_id, 'nonce', m.nonce))
                   FROM messages m
                   WHERE m.id = ANY($5::uuid[])
                      OR (m.channel_id = c.id AND (m.author_id, m.nonce) IN (
                              SELECT * FROM unnest($6::uuid[], $7::text[])))
               ), '[]'::json) AS existing,
               ARRAY(SELECT h.hits FROM hits h JOIN w USING (bucket) ORDER BY w.ord) AS bucket_hits,
               ARRAY(SELECT h.expires_at FROM hits h JOIN w USING (bucket) ORDER BY w.ord) AS bucket_ends
        FROM c
        """,
        channel_id,
        authors,
        reply_ids,
        mentioned,
        ids,
        nonce_authors,
        nonces,
        buckets,
        periods,
        counts,
    )
    return maybe(SendBatchState, record)


# A message's event body is built before its seq is known, with "seq":0 as a
# placeholder for the statement to fill in. Only the key can match the pattern: inside a
# JSON string every quote is escaped.
SEQ_PLACEHOLDER = '"seq":0,'
_INSERT_MESSAGES_AND_EVENTS = """
        WITH gate AS (
            -- Checked again with this statement's snapshot: a change of participants (or
            -- a block) may have committed while the batch's first statement waited for
            -- the conversation's row lock. If so, nothing is written.
            SELECT (SELECT count(*) FROM conversation_participants
                    WHERE channel_id = $1 AND user_id = ANY($13::uuid[]))
                       = cardinality($13::uuid[])
                   AND NOT EXISTS (
                       SELECT 1 FROM channels ch JOIN blocks b
                         ON (b.blocker_id = ch.dm_user_low AND b.blocked_id = ch.dm_user_high)
                         OR (b.blocker_id = ch.dm_user_high AND b.blocked_id = ch.dm_user_low)
                       WHERE ch.id = $1 AND ch.kind = 'direct') AS ok
        ), c AS (
            UPDATE channels SET last_seq = last_seq + cardinality($3::uuid[])
            WHERE id = $1 AND (SELECT ok FROM gate)
            RETURNING last_seq
        ), t AS (
            SELECT u.*, c.last_seq - cardinality($3::uuid[]) + u.ord AS seq,
                   regexp_replace(u.data, '"seq":0,',
                                  '"seq":' || (c.last_seq - cardinality($3::uuid[]) + u.ord) || ',')
                       AS body
            FROM c, unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::text[],
                           $9::text[], $10::int[])
                    WITH ORDINALITY AS u(id, author, content, nonce, reply_to, mentions, data, chunk, ord)
        ), m AS (
            INSERT INTO messages (id, channel_id, seq, author_id, content, nonce, reply_to_id,
                                  mentions, created_at)
            SELECT t.id, $1, t.seq, t.author, t.content, t.nonce, t.reply_to,
                   CASE WHEN t.mentions = '' THEN '{}'::uuid[]
                        ELSE string_to_array(t.mentions, ',')::uuid[] END,
                   $2
            FROM t
        ), s AS (
            -- Taken after the counter (it hangs off c): the same lock order as every other
            -- writer of this conversation, which locks the channel row first.
            INSERT INTO event_streams AS es (kind, entity_id, last_pos)
            SELECT 'channel', $1, cardinality($3::uuid[]) FROM c
            ON CONFLICT (kind, entity_id) DO UPDATE
                SET last_pos = es.last_pos + cardinality($3::uuid[])
            RETURNING id, last_pos
        ), e AS (
            INSERT INTO events (stream_id, pos, type, data)
            SELECT s.id, s.last_pos - cardinality($3::uuid[]) + t.ord, 'message.created',
                   t.body::jsonb
            FROM s, t
        ), chunks AS (
            SELECT t.chunk, max(t.ord) AS last_index, count(*) AS n,
                   CASE WHEN bool_and(i.inline)
                        THEN '[' || string_agg('["message.created",' || t.body || ']', ','
                                               ORDER BY t.ord) || ']'
                        ELSE '' END AS body
            FROM t JOIN unnest($12::boolean[]) WITH ORDINALITY AS i(inline, chunk) USING (chunk)
            GROUP BY t.chunk
        ), notified AS (
            SELECT pg_notify(
                $11::text,
                '{"s":' || s.id || ',"k":"channel","e":"' || $1::uuid::text
                  || '","p":' || (s.last_pos - cardinality($3::uuid[]) + chunks.last_index)
                  || ',"n":' || chunks.n
                  || CASE WHEN chunks.body <> '' THEN ',"ev":' || chunks.body ELSE '' END
                  || '}'
            ) AS done
            FROM s, chunks ORDER BY chunks.chunk
        )
        SELECT (SELECT last_seq FROM c) AS last_seq, (SELECT count(*) FROM notified) AS notes
"""


async def insert_messages_and_events(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    created_at: datetime,
    ids: list[UUID],
    author_ids: list[UUID],
    contents: list[str],
    nonces: list[str | None],
    reply_to_ids: list[UUID | None],
    mentions: list[list[UUID]],
    event_datas: list[str],
    notify_channel: str,
) -> int | None:
    """Take the conversation's next sequence numbers (locking its counter until the
    transaction ends), insert the messages, append one `message.created` event per
    message (its body's SEQ_PLACEHOLDER filled in) and queue the notifications, in one
    statement. The event-log part is `events.insert_events` inlined: same positions, same
    notifications, one round trip fewer on the busiest path there is. Returns the last
    sequence number taken (the messages hold last-n+1 .. last, in order), or None when an
    author is no longer a participant or a block has come between (nothing written: the
    caller retries the batch, whose first statement then sees why)."""
    chunk_of, inline = notification_chunk_ids(["message.created"] * len(event_datas), event_datas)
    rows = await conn.fetch(
        _INSERT_MESSAGES_AND_EVENTS,
        channel_id,
        created_at,
        ids,
        author_ids,
        contents,
        nonces,
        reply_to_ids,
        [",".join(str(u) for u in m) for m in mentions],
        event_datas,
        chunk_of,
        notify_channel,
        inline,
        list(dict.fromkeys(author_ids)),
    )
    last = rows[0]["last_seq"]
    return None if last is None else int(last)
