"""The feed's two walks of the event log (db/queries/event_log.py): the log's, every
commit from a place on, and the streams', each of the user's streams from that place
on. They find the same events in the same order; the streams' walk reads what the
user's streams did, however busy the rest of the instance was."""

from __future__ import annotations

import random
import uuid

import asyncpg

from tests.support import rows_read
from xfchat.db.queries import event_log as log_q

# 3,000 commits: each of one of 50 channels' streams, one to three events, and every
# hundredth of the user's own stream (an access change and a note).
_FILL = """
DO $$
DECLARE
    channels uuid[] := ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 50));
    the_user uuid := current_setting('xfchat.test_user')::uuid;
    sid bigint;
    n int;
BEGIN
    FOR i IN 1 .. 3000 LOOP
        IF i % 100 = 0 THEN
            INSERT INTO event_streams AS es (kind, entity_id, last_pos)
            VALUES ('user', the_user, 2)
            ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos + 2
            RETURNING id, last_pos INTO sid, n;
            INSERT INTO events (stream_id, pos, type, data)
            VALUES (sid, n - 1, 'channel.created', ('{"i": ' || i || '}')::jsonb),
                   (sid, n, 'friend_request.created', ('{"i": ' || i || '}')::jsonb);
        ELSE
            INSERT INTO event_streams AS es (kind, entity_id, last_pos)
            VALUES ('channel', channels[1 + i % 50], 1 + i % 3)
            ON CONFLICT (kind, entity_id) DO UPDATE SET last_pos = es.last_pos + 1 + i % 3
            RETURNING id, last_pos INTO sid, n;
            INSERT INTO events (stream_id, pos, type, data)
            SELECT sid, n - 1 - i % 3 + k, CASE WHEN k = 1 THEN 'message.created'
                                                ELSE 'reaction.added' END,
                   ('{"i": ' || i || '}')::jsonb
            FROM generate_series(1, 1 + i % 3) k;
        END IF;
        COMMIT;
    END LOOP;
END
$$
"""


async def _walk(
    conn: asyncpg.Connection,
    statement: str,
    user: uuid.UUID,
    channels: list[uuid.UUID],
    after: tuple[int, int],
    upto: int,
    limit: int,
    types: list[str] | None,
) -> list[tuple[object, ...]]:
    rows = await conn.fetch(statement, user, channels, after[0], after[1], upto, limit, types, [])
    return [tuple(r) for r in rows]


async def test_the_two_walks_find_the_same_events_and_a_quiet_users_reads_little(
    conn: asyncpg.Connection,
) -> None:
    user = uuid.uuid4()
    # (a DO block takes no parameters: the user's id reaches it as a setting)
    await conn.execute("SELECT set_config('xfchat.test_user', $1, false)", str(user))
    await conn.execute(_FILL)
    await conn.execute("ANALYZE event_commits; ANALYZE events; ANALYZE event_streams")
    head = await conn.fetchval("SELECT max(g) FROM event_commits")
    channels = [
        r["entity_id"]
        for r in await conn.fetch("SELECT entity_id FROM event_streams WHERE kind = 'channel'")
    ]
    rng = random.Random(7)
    for _ in range(60):
        mine = rng.sample(channels, rng.choice([0, 1, 3, 20]))
        g = rng.randrange(0, head)
        pos = rng.choice([0, 0, 1, 2])
        limit = rng.choice([1, 7, 50, 500])
        types = rng.choice([None, ["channel.created"], ["reaction.added", "channel.created"]])
        by_log = await _walk(conn, log_q._FEED_BY_LOG, user, mine, (g, pos), head, limit, types)
        by_stream = await _walk(
            conn, log_q._FEED_BY_STREAM, user, mine, (g, pos), head, limit, types
        )
        assert by_stream == by_log, (len(mine), g, pos, limit, types)
    # A resume's access changes (the user's own stream alone) from the start: 30 of
    # the 3,000 commits are the user's. The log's walk read all 3,000.
    found, read = await rows_read(
        conn,
        lambda: log_q.list_feed_events(
            conn,
            user_id=user,
            channel_ids=[],
            types=["channel.created"],
            after_g=0,
            after_pos=0,
            upto_g=head,
            limit=11,
        ),
        tables=("event_commits", "events", "event_streams"),
    )
    assert [r.data["i"] for r in found] == list(range(100, 1200, 100))
    assert read <= 300, read
