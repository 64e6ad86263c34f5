"""The send path's two statements (domain/messages_send.py runs them in one
transaction per batch): check and count, then write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe
from xfchat.db.queries.access import FACTS_OF_USERS_JSON
from xfchat.db.queries.messages import REPLY_PREVIEW_OBJECT, SEARCH_CONFIG_OF_1
from xfchat.db.queries.rate_limits import HIT_BUCKETS_CTES


@dataclass(frozen=True)
class SendBatchState:
    """What writing a batch of sends to one channel needs, read (and locked) in one
    round trip."""

    now: datetime  # the transaction's timestamp: every message of the batch gets it
    current: bool  # False: who may see the channel changed while this waited for its lock
    facts: list[dict[str, Any]]  # access facts (db/queries/access.py) of the users asked about
    # Of the reply targets asked about, the live messages of this channel, each as a
    # reply previews it (id, author, content, deleted: db/queries/messages.py).
    replyable: list[dict[str, Any]]
    existing: list[dict[str, Any]]  # messages already holding one of the ids or nonces
    bucket_hits: list[int]  # each rate-limit bucket's count before this batch (locked)
    bucket_ends: list[datetime]  # ... and when its window ends
    slowmode: int  # the channel's slowmode seconds (0: none)
    last_sent: list[dict[str, Any]]  # {user_id, at}: the users' last sends here (slowmode)
    # Of the roles asked about, those of the channel's server but @everyone, each as
    # {id, mentionable} (what a role mention needs).
    roles: list[dict[str, Any]]


_PREPARE_SEND_BATCH = (
    """
        WITH c AS (
            SELECT id, server_id, access_version, rate_limit_per_user FROM channels
            WHERE id = $1 FOR KEY SHARE
        ), t AS (SELECT clock_timestamp() AS clock),
"""
    # Zero hits: the buckets are read, their windows renewed and their rows locked; the
    # write adds what the batch used (only sends that are written count).
    + HIT_BUCKETS_CTES.format(
        buckets="$7", periods="$8", counts="array_fill(0, ARRAY[cardinality($7::text[])])"
    )
    + """
        SELECT now() AS now,
               -- The lock returns the row's newest version, the facts come from this
               -- statement's snapshot: equal versions mean the facts are current.
               c.access_version = (SELECT access_version FROM channels WHERE id = $1) AS current,
               """
    + FACTS_OF_USERS_JSON
    + """ AS facts,
               -- Each lookup walks from the ids given, by key, never through the channel
               -- or the table: a statement is planned once, without its arguments
               -- (db/pool.py), and maybe while the table is small. (OFFSET 0 keeps
               -- each LATERAL lookup a lookup: the planner does not flatten it.)
               COALESCE((
                   SELECT json_agg(x.preview) FROM unnest($3::uuid[]) AS r(id),
                       LATERAL (SELECT """
    + REPLY_PREVIEW_OBJECT
    + """ AS preview
                                FROM messages rm LEFT JOIN users ru ON ru.id = rm.author_id
                                WHERE rm.id = r.id AND rm.channel_id = c.id
                                  AND rm.deleted_at IS NULL OFFSET 0) x
               ), '[]'::json) AS replyable,
               COALESCE((
                   SELECT json_agg(json_build_object(
                       'id', m.id, 'channel_id', m.channel_id, 'author_id', m.author_id,
                       'content', m.content, 'reply_to_id', m.reply_to_id, 'nonce', m.nonce,
                       'files', ARRAY(SELECT encode(f.sha256, 'hex') FROM attachments a
                                      JOIN files f ON f.id = a.file_id
                                      WHERE a.message_id = m.id ORDER BY a.position)))
                   FROM (
                       SELECT m.id, m.channel_id, m.author_id, m.content, m.reply_to_id, m.nonce
                       FROM unnest($4::uuid[]) AS i(id),
                            LATERAL (SELECT * FROM messages WHERE id = i.id OFFSET 0) m
                       UNION
                       SELECT m.id, m.channel_id, m.author_id, m.content, m.reply_to_id, m.nonce
                       FROM unnest($5::uuid[], $6::text[]) AS n(author_id, nonce),
                            LATERAL (SELECT * FROM messages WHERE channel_id = c.id
                                     AND author_id = n.author_id AND nonce = n.nonce
                                     OFFSET 0) m
                   ) m
               ), '[]'::json) AS existing,
               ARRAY(SELECT h.hits FROM hits h JOIN w USING (bucket) ORDER BY w.ord) AS bucket_hits,
               ARRAY(SELECT h.expires_at FROM hits h JOIN w USING (bucket) ORDER BY w.ord) AS bucket_ends,
               c.rate_limit_per_user AS slowmode,
               CASE WHEN c.rate_limit_per_user = 0 THEN '[]'::json ELSE COALESCE((
                   SELECT json_agg(json_build_object('user_id', rs.user_id, 'at', rs.last_sent_at))
                   FROM read_states rs
                   WHERE rs.channel_id = c.id AND rs.user_id = ANY($2::uuid[])
                     AND rs.last_sent_at IS NOT NULL
               ), '[]'::json) END AS last_sent,
               CASE WHEN cardinality($9::uuid[]) = 0 THEN '[]'::json ELSE COALESCE((
                   SELECT json_agg(json_build_object('id', r.id, 'mentionable', r.mentionable))
                   FROM roles r
                   WHERE r.id = ANY($9::uuid[]) AND r.server_id = c.server_id
                     AND NOT r.is_default
               ), '[]'::json) END AS roles
        FROM c
"""
)


async def prepare_send_batch(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    users: list[UUID],
    reply_ids: list[UUID],
    ids: list[UUID],
    nonce_authors: list[UUID],
    nonces: list[str],
    buckets: list[str],
    periods: list[int],
    role_ids: list[UUID],
) -> SendBatchState | None:
    """Read the access facts of `users` (authors and mentioned people), check reply
    targets, find earlier sends with these ids or nonces, and read the counts of the
    batch's rate-limit buckets, locking them until the transaction ends (`periods[i]` is
    the window of `buckets[i]`) -- in the caller's transaction, in one round trip. The channel's row is share-locked (FOR KEY SHARE): sends do not
    wait for each other, but a change of who may see the channel (which takes FOR UPDATE,
    db/queries/access.py) waits for this transaction, and this one for it. The message
    counter is left to the write, so it stays locked as briefly as possible. None if
    there is no such channel. Also the channel's slowmode and, when it has one, when
    each of `users` last sent a message in it, and which of `role_ids` are roles of its
    server."""
    record = await conn.fetchrow(
        _PREPARE_SEND_BATCH,
        channel_id,
        users,
        reply_ids,
        ids,
        nonce_authors,
        nonces,
        buckets,
        periods,
        role_ids,
    )
    return maybe(SendBatchState, record)


# A message's event body is built before its seq is known, with "seq":0 as a
# placeholder for the statement to fill in. Only the key can match the pattern: inside a
# JSON string every quote is escaped.
SEQ_PLACEHOLDER = '"seq":0,'
_INSERT_MESSAGES_AND_EVENTS = f"""
        WITH c AS (
            UPDATE channels SET last_seq = last_seq + cardinality($3::uuid[])
            WHERE id = $1
            RETURNING last_seq
        ), t AS (
            SELECT u.*, c.last_seq - cardinality($3::uuid[]) + u.ord AS seq
            FROM c, unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::text[],
                           $9::text[], $13::bool[], $14::text[])
                    WITH ORDINALITY AS u(id, author, content, nonce, reply_to, mentions, data,
                                         everyone, roles, ord)
        ), m AS (
            INSERT INTO messages (id, channel_id, seq, author_id, content, nonce, reply_to_id,
                                  mentions, mention_everyone, mention_roles, created_at,
                                  search_config)
            SELECT t.id, $1, t.seq, t.author, t.content, t.nonce, t.reply_to,
                   CASE WHEN t.mentions = '' THEN '{{}}'::uuid[]
                        ELSE string_to_array(t.mentions, ',')::uuid[] END,
                   t.everyone,
                   CASE WHEN t.roles = '' THEN '{{}}'::uuid[]
                        ELSE string_to_array(t.roles, ',')::uuid[] END,
                   $2, {SEARCH_CONFIG_OF_1}
            FROM t
        ), s AS (
            -- Taken after the counter (it hangs off c): the same lock order as every other
            -- writer of this channel, which locks the channel row first.
            INSERT INTO event_streams AS es (kind, entity_id, last_pos)
            SELECT 'channel', $1, cardinality($3::uuid[]) FROM c
            ON CONFLICT (kind, entity_id) DO UPDATE
                SET last_pos = es.last_pos + cardinality($3::uuid[])
            RETURNING id, last_pos
        ), e AS (
            INSERT INTO events (stream_id, pos, type, data)
            SELECT s.id, s.last_pos - cardinality($3::uuid[]) + t.ord, 'message.created',
                   replace(t.data, $10::text, '"seq":' || t.seq || ',')::jsonb
            FROM s, t
        ), read AS (
            -- Sending marks the channel read up to the author's own message.
            -- last_sent_at is what slowmode measures from.
            INSERT INTO read_states AS r (user_id, channel_id, last_read_seq, last_sent_at)
            SELECT t.author, $1, max(t.seq), $2 FROM t GROUP BY t.author ORDER BY t.author
            ON CONFLICT (user_id, channel_id) DO UPDATE
                SET last_read_seq = GREATEST(r.last_read_seq, EXCLUDED.last_read_seq),
                    last_sent_at = EXCLUDED.last_sent_at, updated_at = now()
        ), counted AS (
            -- The rate-limit rows were locked by the batch's first statement.
            UPDATE rate_limits r SET hits = r.hits + b.n
            FROM unnest($11::text[], $12::int[]) AS b(bucket, n)
            WHERE r.bucket = b.bucket
        )
        SELECT last_seq FROM c
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
    buckets: list[str],
    counts: list[int],
    mention_everyone: list[bool],
    mention_roles: list[list[UUID]],
) -> int:
    """Take the channel's next sequence numbers (locking its counter until the
    transaction ends), insert the messages and append one `message.created` event per
    message (its body's SEQ_PLACEHOLDER filled in), move each author's read position to
    their newest message and add `counts[i]` hits to rate-limit bucket `buckets[i]`, in
    one statement: the event-log part
    is `event_log.insert_events` inlined, one round trip fewer on the busiest path there
    is. The commit trigger orders and announces the events. Returns the last sequence
    number taken (the messages hold last-n+1 .. last, in order)."""
    last = await conn.fetchval(
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
        SEQ_PLACEHOLDER,
        buckets,
        counts,
        mention_everyone,
        [",".join(str(r) for r in m) for m in mention_roles],
    )
    return int(last)
