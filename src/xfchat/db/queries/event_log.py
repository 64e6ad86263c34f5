"""The durable event log: streams, their events, and the global commit order.

A stream (a user, a channel, a server) has a counter row, `event_streams.last_pos`: a
writer takes its next positions in its own transaction, so positions are gap-free per
stream. At COMMIT, a trigger (migration 0008) gives each append the next `g` of the
global commit order, records it in `event_commits` and announces it with NOTIFY on
NOTIFY_CHANNEL. An event's place in the log is therefore (g, pos): the order in which
every connection receives it, and the resume position it is handed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, one
from xfchat.db.queries.access import FACTS_STILL_HOLD

# The trigger that announces commits writes to this channel (migration 0008).
NOTIFY_CHANNEL = "xfchat_events"


@dataclass(frozen=True)
class LogHead:
    g: int  # the last commit
    pruned_g: int  # commits up to here were removed by retention


@dataclass(frozen=True)
class LogEvent:
    """One event at its place in the log."""

    g: int
    kind: str
    entity_id: UUID
    pos: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CommitEvent(LogEvent):
    """... with the positions of the whole commit it belongs to."""

    first_pos: int
    last_pos: int


async def insert_events(
    conn: asyncpg.Connection, *, kind: str, entity_id: UUID, types: list[str], datas: list[str]
) -> None:
    """Append events to one stream at its next positions (locking its counter row until
    the caller's transaction ends). The commit trigger orders and announces them."""
    await conn.execute(
        """
        WITH s AS (
            INSERT INTO event_streams AS es (kind, entity_id, last_pos) VALUES ($1, $2, $3)
            ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos + $3
            RETURNING id, last_pos
        )
        INSERT INTO events (stream_id, pos, type, data)
        SELECT s.id, s.last_pos - $3 + t.ord, t.type, t.data::jsonb
        FROM s, unnest($4::text[], $5::text[]) WITH ORDINALITY AS t(type, data, ord)
        """,
        kind,
        entity_id,
        len(types),
        types,
        datas,
    )


async def lock_streams(
    conn: asyncpg.Connection, *, kinds: list[str], entity_ids: list[UUID]
) -> None:
    """Lock the counter rows of these streams (made, empty, if new), in the order given,
    which must be the log's lock order, until the caller's transaction ends; appends
    to them may then come in any order. Appends nothing: the commit trigger only fires
    for a row whose last_pos grew."""
    await conn.execute(
        """
        INSERT INTO event_streams AS es (kind, entity_id, last_pos)
        SELECT u.kind, u.entity_id, 0
        FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS u(kind, entity_id, ord)
        ORDER BY u.ord
        ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos
        """,
        kinds,
        entity_ids,
    )


async def insert_events_many(
    conn: asyncpg.Connection,
    *,
    kinds: list[str],
    entity_ids: list[UUID],
    types: list[str],
    datas: list[str],
) -> None:
    """Append events to several streams in one statement (event i to stream
    (kinds[i], entity_ids[i]); each stream's events keep their order). The counter rows
    are taken in the order the caller lists the streams' first events, which must be
    the log's lock order (domain/events.py)."""
    await conn.execute(
        """
        WITH t AS (
            SELECT u.kind, u.entity_id, u.type, u.data, u.ord,
                   row_number() OVER (PARTITION BY u.kind, u.entity_id ORDER BY u.ord) AS nth
            FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])
                    WITH ORDINALITY AS u(kind, entity_id, type, data, ord)
        ), n AS (
            SELECT kind, entity_id, count(*) AS n, min(ord) AS first FROM t
            GROUP BY kind, entity_id
        ), s AS (
            INSERT INTO event_streams AS es (kind, entity_id, last_pos)
            SELECT kind, entity_id, n FROM n ORDER BY first
            ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos + EXCLUDED.last_pos
            RETURNING id, kind, entity_id, last_pos
        )
        INSERT INTO events (stream_id, pos, type, data)
        SELECT s.id, s.last_pos - n.n + t.nth, t.type, t.data::jsonb
        FROM t JOIN n USING (kind, entity_id) JOIN s USING (kind, entity_id)
        """,
        kinds,
        entity_ids,
        types,
        datas,
    )


async def notify(conn: asyncpg.Connection, *, channel: str, payload: str) -> None:
    await conn.execute("SELECT pg_notify($1::text, $2::text)", channel, payload)


async def notify_many(conn: asyncpg.Connection, *, channel: str, payloads: list[str]) -> None:
    """Several notifications in one statement, sent in the order given (one round trip
    however many: a long list of channel ids goes in several, each under 8000 bytes)."""
    await conn.execute(
        "SELECT count(pg_notify($1::text, p)) FROM unnest($2::text[]) AS t(p)",
        channel,
        payloads,
    )


_NOTIFY_IF_FACTS_HOLD = f"SELECT pg_notify($4::text, $5::text) FROM ({FACTS_STILL_HOLD}) held"


async def notify_if_facts_hold(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    user_id: UUID,
    facts: str,
    channel: str,
    payload: str,
) -> bool:
    """notify, only if the user's access facts in the channel (`facts`, JSON text) still
    hold, in one statement (its own transaction, in autocommit) that locks the channel's
    row first (db/queries/access.py's FACTS_STILL_HOLD). Whether it was sent."""
    return bool(
        await conn.fetch(_NOTIFY_IF_FACTS_HOLD, channel_id, user_id, facts, channel, payload)
    )


async def get_log_head(conn: asyncpg.Connection) -> LogHead:
    return one(
        LogHead,
        await conn.fetchrow(
            "SELECT c.g, r.pruned_g FROM event_clock c, event_retention r",
        ),
    )


async def get_commit_time(conn: asyncpg.Connection, *, g: int) -> datetime | None:
    """When commit `g` was made (its transaction's start), if the log has it."""
    value = await conn.fetchval("SELECT created_at FROM event_commits WHERE g = $1", g)
    return value if value is None else cast(datetime, value)


async def list_commits(conn: asyncpg.Connection, *, after: int, upto: int) -> list[CommitEvent]:
    """Every event of the commits after..upto, in log order (what a process missed)."""
    records = await conn.fetch(
        """
        SELECT c.g, s.kind, s.entity_id, e.pos, e.type, e.data, c.first_pos, c.last_pos
        FROM event_commits c
        JOIN event_streams s ON s.id = c.stream_id
        JOIN events e ON e.stream_id = c.stream_id AND e.pos BETWEEN c.first_pos AND c.last_pos
        WHERE c.g > $1 AND c.g <= $2
        ORDER BY c.g, e.pos
        """,
        after,
        upto,
    )
    return many(CommitEvent, records)


_FEED_STREAMS = """
    WITH st AS (
        SELECT id, kind, entity_id FROM event_streams
        WHERE (kind = 'user' AND entity_id = $1)
           OR (kind = 'channel' AND entity_id = ANY($2::uuid[]))
           OR (kind = 'server' AND entity_id = ANY($8::uuid[]))
    )
"""


# The feed's events in log order, found two ways. The log's walk reads every commit from
# the place on (the log's key) and keeps those of the user's streams: cheap when little
# happened since, or when the user's streams carry the traffic, but a quiet user's
# resume on a busy instance read everything everyone did since (303,000 commits for
# none of theirs, a scale audit found). The streams' walk reads each stream's own
# commits from the place on (event_commits_stream_idx), at most the limit of each, and
# merges them: what the user's streams did since, however busy the rest is, but up to
# the limit for every stream. The cheaper bound is taken: the streams' walk where more
# commits were made since than the streams times the limit.
# A commit `c` of the stream `st` and each of its events `e` after the place
# ($3 g, $4 pos), up to commit $5, of the types $7 (all if NULL): both walks' rule.
_FEED_EVENTS_AFTER = """
    event_commits c
    JOIN events e ON e.stream_id = c.stream_id AND e.pos BETWEEN c.first_pos AND c.last_pos
    WHERE c.stream_id = st.id AND c.g >= $3 AND c.g <= $5 AND (c.g, e.pos) > ($3, $4)
      AND ($7::text[] IS NULL OR e.type = ANY($7::text[]))
"""
_FEED_BY_LOG = f"""
    {_FEED_STREAMS}
    SELECT c.g, st.kind, st.entity_id, e.pos, e.type, e.data
    FROM st, {_FEED_EVENTS_AFTER}
    ORDER BY c.g, e.pos
    LIMIT $6
"""
_FEED_BY_STREAM = f"""
    {_FEED_STREAMS}
    SELECT x.g, st.kind, st.entity_id, x.pos, x.type, x.data
    FROM st
    CROSS JOIN LATERAL (
        SELECT c.g, e.pos, e.type, e.data FROM {_FEED_EVENTS_AFTER}
        ORDER BY c.g, e.pos
        LIMIT $6
    ) x
    ORDER BY x.g, x.pos
    LIMIT $6
"""


async def list_feed_events(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    channel_ids: list[UUID],
    after_g: int,
    after_pos: int,
    upto_g: int,
    limit: int,
    types: list[str] | None = None,
    server_ids: list[UUID] | None = None,
) -> list[LogEvent]:
    """The events of a user's own stream and of these channels and servers after
    (g, pos), up to commit `upto_g`, in log order, at most `limit`; only those of
    `types` if given."""
    streams = 1 + len(channel_ids) + len(server_ids or [])
    by_stream = upto_g - after_g > streams * limit
    records = await conn.fetch(
        _FEED_BY_STREAM if by_stream else _FEED_BY_LOG,
        user_id,
        channel_ids,
        after_g,
        after_pos,
        upto_g,
        limit,
        types,
        server_ids or [],
    )
    return many(LogEvent, records)


async def prune_commits(
    conn: asyncpg.Connection, *, older_than_s: float, limit: int, max_events: int
) -> int:
    """Remove the oldest commits (at most `limit`, holding at most `max_events` events
    together, but always the oldest one) made longer ago than `older_than_s`, with their
    events, and record how far the log now starts: a resume from before gets a resync,
    never a silent gap. Returns the number of commits removed.

    (A commit holds as many events as its transaction wrote to one stream: a send batch
    of 256 messages, a bulk deletion's 100. Counted in commits alone, one statement
    could delete a quarter of a million events and outlast the statement timeout, every
    time, on the same oldest commits: the log would never be pruned again.)"""
    removed = await conn.fetchval(
        """
        WITH head AS (
            SELECT g, created_at, row_number() OVER (ORDER BY g) AS nth,
                   sum(last_pos - first_pos + 1) OVER (ORDER BY g) AS events_upto
            FROM (SELECT g, created_at, first_pos, last_pos FROM event_commits
                  ORDER BY g LIMIT $2) h
        ), cut AS (
            SELECT max(g) AS g FROM head
            WHERE created_at < now() - make_interval(secs => $1)
              AND (events_upto <= $3 OR nth = 1)
        ), gone_events AS (
            DELETE FROM events e USING event_commits c, cut
            WHERE c.g <= cut.g AND e.stream_id = c.stream_id
              AND e.pos BETWEEN c.first_pos AND c.last_pos
        ), gone AS (
            DELETE FROM event_commits c USING cut WHERE c.g <= cut.g RETURNING c.g
        ), mark AS (
            UPDATE event_retention SET pruned_g = GREATEST(pruned_g, (SELECT max(g) FROM gone))
            WHERE EXISTS (SELECT 1 FROM gone)
        )
        SELECT count(*) FROM gone
        """,
        older_than_s,
        limit,
        max_events,
    )
    return int(removed)


# A deleted message's events, each kind found by the index of what it names (separate
# statements: one whose WHERE ORs them was planned as a walk of the channel's whole
# stream): its own (the sent text and each edit's), the previews of it that replies and
# pin notices carry (and each edit of those), and its reactions' (each added or taken
# back). Every edit, reaction toggle and pin is an event naming the message, counted only
# in the API's request limit, so one message can be named by millions: each statement
# empties at most $4 events of each message ($2, with $3 the place in the stream $1
# after which, for each), in stream order by the indexes of migration 0044; each
# message's count found and its last place, and how many the statement changed. (The
# stream is a test no index serves, IS TRUE: as a bound of events_pkey a generic plan
# walked the channel's whole stream from `after`, every event of its week, 16,000 rows
# for one deletion and 160,000 for a bulk deletion of 10 at 40,000 events.) Its own
# events ($5 the tombstone):
SCRUB_OWN = """
    WITH batch AS (
        SELECT w.id, e.stream_id, e.pos
        FROM unnest($2::text[], $3::bigint[]) AS w(id, after)
        CROSS JOIN LATERAL (
            SELECT stream_id, pos FROM events
            WHERE (data ->> 'id') = w.id AND pos > w.after AND (stream_id = $1) IS TRUE
              AND type IN ('message.created', 'message.updated')
            ORDER BY (data ->> 'id'), pos LIMIT $4
        ) e
    ), done AS (
        UPDATE events e SET data = e.data || $5::jsonb
        FROM batch b WHERE e.stream_id = b.stream_id AND e.pos = b.pos
        RETURNING 1
    )
    SELECT id, count(*) AS found, max(pos) AS last, (SELECT count(*) FROM done) AS changed
    FROM batch GROUP BY id
"""
# ... the previews of it (events_reply_to_pos_idx):
SCRUB_PREVIEWS = """
    WITH batch AS (
        SELECT w.id, e.stream_id, e.pos
        FROM unnest($2::text[], $3::bigint[]) AS w(id, after)
        CROSS JOIN LATERAL (
            SELECT stream_id, pos FROM events
            WHERE (data -> 'reply_to' ->> 'id') = w.id AND pos > w.after AND (stream_id = $1) IS TRUE
              AND type IN ('message.created', 'message.updated')
            ORDER BY (data -> 'reply_to' ->> 'id'), pos LIMIT $4
        ) e
    ), done AS (
        UPDATE events e
        SET data = jsonb_set(e.data, '{reply_to}',
                             e.data -> 'reply_to' || '{"content": "", "deleted": true}'::jsonb)
        FROM batch b WHERE e.stream_id = b.stream_id AND e.pos = b.pos
        RETURNING 1
    )
    SELECT id, count(*) AS found, max(pos) AS last, (SELECT count(*) FROM done) AS changed
    FROM batch GROUP BY id
"""
# ... and its reactions', which keep their place (with an empty emoji):
SCRUB_REACTIONS = """
    WITH batch AS (
        SELECT w.id, e.stream_id, e.pos
        FROM unnest($2::text[], $3::bigint[]) AS w(id, after)
        CROSS JOIN LATERAL (
            SELECT stream_id, pos FROM events
            WHERE (data ->> 'message_id') = w.id AND pos > w.after AND (stream_id = $1) IS TRUE
              AND type IN ('reaction.added', 'reaction.removed')
            ORDER BY (data ->> 'message_id'), pos LIMIT $4
        ) e
    ), done AS (
        UPDATE events e SET data = e.data || '{"emoji": ""}'::jsonb
        FROM batch b WHERE e.stream_id = b.stream_id AND e.pos = b.pos
        RETURNING 1
    )
    SELECT id, count(*) AS found, max(pos) AS last, (SELECT count(*) FROM done) AS changed
    FROM batch GROUP BY id
"""
SCRUB_BATCH = 5000  # events emptied per statement, at most (of one message, or of several)


async def scrub_message_events(
    conn: asyncpg.Connection, *, channel_id: UUID, message_ids: list[UUID], deleted_at: str
) -> int:
    """Empty the text (and the nonce, files and reactions) of deleted messages in the events that
    carried it, which then look as the messages do in history (deleted, with their time,
    no reactions, unpinned), in the previews of them that replies (and pin notices)
    carry, and in their reactions' own events (an emoji is text of up to 64 characters:
    the event keeps its place and who reacted, as a Matrix redaction keeps a redacted
    reaction's sender, with an empty `emoji`); how many events changed. At most
    SCRUB_BATCH events a statement (all in the caller's transaction), so that no
    statement outlasts the statement timeout however many edits, pins and reaction
    toggles named a message."""
    tombstone: dict[str, object] = {
        "content": "",
        "nonce": None,
        "deleted": True,
        "deleted_at": deleted_at,
        "attachments": [],
        "reactions": [],
        "pinned": False,
    }
    stream_id = await conn.fetchval(
        "SELECT id FROM event_streams WHERE kind = 'channel' AND entity_id = $1", channel_id
    )
    if stream_id is None:
        return 0
    changed = 0
    for sql, extra in (
        (SCRUB_OWN, (tombstone,)),
        (SCRUB_PREVIEWS, ()),
        (SCRUB_REACTIONS, ()),
    ):
        # Each message's place in the stream: all at once, SCRUB_BATCH between them a
        # statement, and then those that had more, until none has (a bulk deletion of
        # 100 messages named a few times each is one statement of each kind).
        after = dict.fromkeys((str(m) for m in message_ids), 0)
        while after:
            each = max(1, SCRUB_BATCH // len(after))
            rows = await conn.fetch(sql, stream_id, list(after), list(after.values()), each, *extra)
            changed += int(rows[0]["changed"]) if rows else 0
            after = {r["id"]: int(r["last"]) for r in rows if r["found"] == each}
    return changed


async def scrub_user_stream_field(
    conn: asyncpg.Connection, *, user_id: UUID, event_type: str, field: str, value: str
) -> int:
    """Put `value` in `field` of every `event_type` event of the user's own stream (a
    deleted account's email events, which only its own sessions ever read); how many
    changed. One statement: the stream's events by the primary key."""
    status = await conn.execute(
        """
        UPDATE events SET data = data || jsonb_build_object($3::text, $4::text)
        WHERE stream_id = (SELECT id FROM event_streams WHERE kind = 'user' AND entity_id = $1)
          AND type = $2
        """,
        user_id,
        event_type,
        field,
        value,
    )
    return int(status.split()[-1])
