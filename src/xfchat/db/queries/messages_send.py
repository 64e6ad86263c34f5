"""The send path's two statements (domain/messages_send.py runs them in one
transaction per batch): check and count, then write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe
from xfchat.db.queries.event_log import NOTIFICATION, notification_chunk_ids
from xfchat.db.queries.rate_limits import HIT_BUCKETS_CTES


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


_PREPARE_SEND_BATCH = (
    """
        WITH c AS (
            SELECT id, kind, dm_user_low, dm_user_high FROM channels
            WHERE id = $1 AND server_id IS NULL FOR KEY SHARE
        ), t AS (SELECT clock_timestamp() AS clock),
"""
    + HIT_BUCKETS_CTES.format(buckets="$8", periods="$9", counts="$10")
    + """
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
"""
)


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
    `buckets[i]`) -- in the caller's transaction, in one round trip. The conversation's
    row is share-locked (FOR KEY SHARE): sends do not wait for each other, but a change
    of participants (which takes FOR UPDATE) waits for this transaction, and this one
    for it. The message counter is left to the write, so it stays locked as briefly as
    possible. None if there is no such conversation."""
    record = await conn.fetchrow(
        _PREPARE_SEND_BATCH,
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
_INSERT_MESSAGES_AND_EVENTS = (
    """
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
                   replace(u.data, $14::text,
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
            SELECT pg_notify($11::text, """
    + NOTIFICATION.format(
        stream="s.id",
        kind="'channel'",
        entity="$1::uuid::text",
        pos="s.last_pos - cardinality($3::uuid[]) + chunks.last_index",
        count="chunks.n",
        body="chunks.body",
    )
    + """) AS done
            FROM s, chunks ORDER BY chunks.chunk
        )
        SELECT (SELECT last_seq FROM c) AS last_seq, (SELECT count(*) FROM notified) AS notes
"""
)


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
        SEQ_PLACEHOLDER,
    )
    last = rows[0]["last_seq"]
    return None if last is None else int(last)
