"""The send path's two statements (domain/messages_send.py runs them in one
transaction per batch): check and count, then write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe
from xfchat.db.queries.access import FACTS_BY_USER_JSONB, FACTS_OF_USERS_JSON
from xfchat.db.queries.messages import REPLY_PREVIEW_OBJECT


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
        ), h AS (
            -- Zero hits: the buckets are read, their windows renewed and their rows
            -- locked; the write adds what the batch used (only sends written count).
            SELECT * FROM xf_hit_buckets($7::text[], $8::int[],
                                         array_fill(0, ARRAY[cardinality($7::text[])]))
        )
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
                                  AND rm.deleted_at IS NULL OFFSET 0
                                -- A deletion (FOR UPDATE) waits for this send, and then
                                -- scrubs its preview; one committed first hides it.
                                FOR SHARE OF rm) x
               ), '[]'::json) AS replyable,
               COALESCE((
                   SELECT json_agg(json_build_object(
                       'id', m.id, 'channel_id', m.channel_id, 'author_id', m.author_id,
                       'content', m.content, 'reply_to_id', m.reply_to_id, 'nonce', m.nonce,
                       'changed', m.edited_at IS NOT NULL OR m.deleted_at IS NOT NULL,
                       'files', ARRAY(SELECT encode(f.sha256, 'hex') FROM attachments a
                                      JOIN files f ON f.id = a.file_id
                                      WHERE a.message_id = m.id ORDER BY a.position)))
                   FROM (
                       SELECT m.id, m.channel_id, m.author_id, m.content, m.reply_to_id, m.nonce,
                              m.edited_at, m.deleted_at
                       FROM unnest($4::uuid[]) AS i(id),
                            LATERAL (SELECT * FROM messages WHERE id = i.id OFFSET 0) m
                       UNION
                       SELECT m.id, m.channel_id, m.author_id, m.content, m.reply_to_id, m.nonce,
                              m.edited_at, m.deleted_at
                       FROM unnest($5::uuid[], $6::text[]) AS n(author_id, nonce),
                            LATERAL (SELECT * FROM messages WHERE channel_id = c.id
                                     AND author_id = n.author_id AND nonce = n.nonce
                                     OFFSET 0) m
                   ) m
               ), '[]'::json) AS existing,
               ARRAY(SELECT o_hits FROM h ORDER BY o_ord) AS bucket_hits,
               ARRAY(SELECT o_expires_at FROM h ORDER BY o_ord) AS bucket_ends,
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


async def list_last_sent(
    conn: asyncpg.Connection, *, channel_id: UUID, user_ids: list[UUID]
) -> dict[UUID, datetime]:
    """When each of `user_ids` last sent a message in the channel (those who never did
    are left out), as committed now: read in a statement of its own, after the caller
    waited for the locks of those users' sends under way (slowmode)."""
    records = await conn.fetch(
        """
        SELECT user_id, last_sent_at FROM read_states
        WHERE channel_id = $1 AND user_id = ANY($2::uuid[]) AND last_sent_at IS NOT NULL
        """,
        channel_id,
        user_ids,
    )
    return {r["user_id"]: r["last_sent_at"] for r in records}


# A message's event body is built before its seq is known, with "seq":0 as a
# placeholder for the statement to fill in (and, on the fast path, before its time is
# known: "created_at":"@now"). Only the key can match the pattern: inside a JSON string
# every quote is escaped.
SEQ_PLACEHOLDER = '"seq":0,'
AT_PLACEHOLDER = "@now"
_INSERT_MESSAGES_AND_EVENTS = """
    SELECT xf_write_messages($1, $2, $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                             $7::uuid[], $8::text[], $9::text[], $12::bool[], $13::text[],
                             $10::text[], $11::int[])
"""


async def insert_messages_and_events(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    created_at: datetime,
    ids: list[UUID],
    author_ids: list[UUID | None],
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
    one statement (xf_write_messages, migration 0026: the event-log part is
    `event_log.insert_events` inlined, one round trip fewer on the busiest path there
    is). The commit trigger orders and announces the events. Returns the last sequence
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
        buckets,
        counts,
        mention_everyone,
        [",".join(str(r) for r in m) for m in mention_roles],
    )
    return int(last)


@dataclass(frozen=True)
class FastBatch:
    status: str  # ok (written), gone, stale, slowmode, repeat or limited (nothing written)
    at: datetime  # the transaction's time: every message of the batch has it
    last: int | None  # the last sequence number taken (the batch holds last-n+1 .. last)
    hits: list[int] | None  # each rate-limit bucket's count before the batch
    ends: list[datetime] | None  # ... and when its window ends


_SEND_BATCH_FAST = f"""
    SELECT o_status, o_at, o_last, o_hits, o_ends FROM xf_send_batch(
        $1, (SELECT access_version FROM channels WHERE id = $1),
        COALESCE({FACTS_BY_USER_JSONB} = $3::jsonb, false),
        $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::int[], $9::int[],
        $10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::text[], $15::text[],
        $16::bool[], $17::int[])
"""


async def send_batch_fast(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    users: list[UUID],
    facts: dict[str, Any],
    check_ids: list[UUID],
    nonce_authors: list[UUID],
    check_nonces: list[str],
    buckets: list[str],
    periods: list[int],
    limits: list[int],
    counts: list[int],
    ids: list[UUID],
    author_ids: list[UUID],
    contents: list[str],
    nonces: list[str | None],
    mentions: list[list[UUID]],
    event_datas: list[str],
    mention_everyone: list[bool],
) -> FastBatch:
    """A batch of sends checked and written in one statement, which is its own
    transaction (call it outside any), so that it returns after its commit
    (xf_send_batch, migration 0026). `facts` is the JSON object, by user id, of the
    access facts of `users` the batch was decided from: if they are not the current
    ones, or a message with one of `check_ids` or an (author, nonce) pair already
    exists, or the channel has slowmode, or any bucket would go past its limit with
    `counts` added, nothing is written and the status says which."""
    record = await conn.fetchrow(
        _SEND_BATCH_FAST,
        channel_id,
        users,
        facts,
        check_ids,
        nonce_authors,
        check_nonces,
        buckets,
        periods,
        limits,
        ids,
        author_ids,
        contents,
        nonces,
        [",".join(str(u) for u in m) for m in mentions],
        event_datas,
        mention_everyone,
        counts,
    )
    assert record is not None
    return FastBatch(*record)


async def count_messages_holding(
    conn: asyncpg.Connection,
    *,
    message_id: UUID | None,
    channel_id: UUID,
    author_id: UUID,
    nonce: str | None,
) -> int:
    """Messages holding `message_id`, or `author_id`'s `nonce` in `channel_id` (what a
    send of them would be a repeat of, or conflict with)."""
    count = await conn.fetchval(
        """
        SELECT (SELECT count(*) FROM messages WHERE id = $1::uuid)
             + (SELECT count(*) FROM messages
                WHERE channel_id = $2 AND author_id = $3 AND nonce = $4::text)
        """,
        message_id,
        channel_id,
        author_id,
        nonce,
    )
    return int(count)
