"""What a hostile member can make another member's unread counts walk (the counts of
`ready`, `GET /api/users/@me/state` and `channel.revealed`): deleted messages after their
read position, mentions of them long read, mentions of someone else. Measured as
test_unreads_mention_walk.py measures it: the rows of `messages` a generic plan read."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.factories import MakeUser, community, pair, role, say
from tests.support import (
    conversations_plan,
    explain_reads,
    pair_counts,
    pairs_plan,
    rows_walked,
)
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries.conversations import MENTION_WALK, UNREAD_CAP

HISTORY = 5_000  # (past the bound of 4 x UNREAD_CAP many times over; cheap to write)
LONG = 600  # (s: the bulk writes and plans, on a loaded box)


async def _history(
    conn: asyncpg.Connection,
    channel: str,
    author: uuid.UUID,
    *,
    mentions: list[uuid.UUID],
    deleted: bool,
) -> None:
    """HISTORY messages by `author` in `channel` (as many sends would leave them), each
    naming `mentions`, deleted or not. (This connection is the test's own: no statement
    timeout for the bulk writes, on a loaded box.)"""
    await conn.execute("SET statement_timeout = 0")
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, author_id, content, mentions, created_at,
                              deleted_at)
        SELECT gen_random_uuid(), $1, i, $2, CASE WHEN $5 THEN '' ELSE 'm ' || i END,
               $4::uuid[], now() - interval '1 day', CASE WHEN $5 THEN now() END
        FROM generate_series(1, $3::int) AS i
        """,
        uuid.UUID(channel),
        author,
        HISTORY,
        mentions,
        deleted,
        timeout=LONG,
    )
    await conn.execute(
        "UPDATE channels SET last_seq = $2 WHERE id = $1", uuid.UUID(channel), HISTORY
    )
    # and, as any real database holds, live messages elsewhere (another server's channel)
    elsewhere = await conn.fetchval(
        "INSERT INTO servers (name, owner_id) VALUES ('busy', $1) RETURNING id", author
    )
    other = await conn.fetchval(
        "INSERT INTO channels (server_id, kind, name, position) VALUES ($1, 'text', 'busy', 0)"
        " RETURNING id",
        elsewhere,
    )
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
        SELECT gen_random_uuid(), $1, i, $2, '', now() - interval '2 days'
        FROM generate_series(1, $3::int) AS i
        """,
        other,
        author,
        3 * HISTORY,
        timeout=LONG,
    )
    await conn.execute("ANALYZE messages", timeout=LONG)


async def counted_within_the_cap(
    conn: asyncpg.Connection, reader: uuid.UUID, channel: str, counts: tuple[int, int]
) -> None:
    """The reader's (unread, mention_count) in the channel are `counts`, and the generic
    plan that counts them reads at most 4 x UNREAD_CAP rows."""
    plan = await pairs_plan(conn, reader, channel, LONG)
    assert await pair_counts(conn, reader, channel) == counts
    walked = rows_walked(plan)
    assert walked <= 4 * UNREAD_CAP, (walked, plan["Actual Total Time"])


async def name(
    conn: asyncpg.Connection, channel: str, author: uuid.UUID, named: list[uuid.UUID]
) -> None:
    """One more message by `author` in `channel`, naming `named`."""
    await conn.execute(
        "WITH c AS (UPDATE channels SET last_seq = last_seq + 1 WHERE id = $1"
        " RETURNING last_seq)"
        " INSERT INTO messages (id, channel_id, seq, author_id, content, mentions)"
        " SELECT gen_random_uuid(), $1, c.last_seq, $2, 'hey', $3 FROM c",
        uuid.UUID(channel),
        author,
        named,
    )
    await conn.execute("ANALYZE message_mentions")


async def test_mentions_of_someone_else_do_not_make_the_mention_walk_long(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Holds: the mention count finds the reader's mentions by the GIN indexes, and the
    messages that name someone else are not walked."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    # ann (any member who may write) names cid in every message; ben never read #general.
    await _history(conn, srv.general, ann.id, mentions=[cid.id], deleted=False)
    for mentions in (0, 1):
        if mentions:
            # then names ben once: found by his own key, not by a hash of every mention
            # after his read position (cid's too) against a scan of all of `messages`
            await conn.execute("DEALLOCATE unreads")
            await name(conn, srv.general, ann.id, [ben.id])
        await counted_within_the_cap(conn, ben.id, srv.general, (UNREAD_CAP, mentions))


async def test_deleted_messages_do_not_make_the_unread_walk_long(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    await _history(conn, srv.general, ann.id, mentions=[], deleted=True)
    await counted_within_the_cap(conn, ben.id, srv.general, (0, 0))


async def test_deleted_messages_do_not_make_a_conversations_walk_long(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, chat = await pair(client, make_user)
    await _history(conn, chat, ann.id, mentions=[], deleted=True)
    plan = await conversations_plan(conn, ben.id, chat, LONG)
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    assert [(c["unread"], c["mention_count"]) for c in state["conversations"]] == [(0, 0)]
    walked = rows_walked(plan)
    assert walked <= 4 * UNREAD_CAP, (walked, plan["Actual Total Time"])


async def test_mentions_long_read_do_not_make_every_channels_walk_long(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A member named HISTORY times (by a hostile member, or a popular one over years),
    all of it read, is counted in each of their channels by reading those rows
    again: on every `ready` and `GET /api/users/@me/state`, for each text channel of
    each server (and so does each conversation's count, conversations._LIST_SELECT)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    others = []
    for i in range(3):
        made = await client.post(
            srv.url("/channels"), headers=ann.headers, json={"name": f"quiet{i}"}
        )
        assert made.status_code == 201, made.text
        others.append(made.json()["id"])
    # ann named ben HISTORY times in #general, long ago; ben read it all.
    await _history(conn, srv.general, ann.id, mentions=[ben.id], deleted=False)
    await conn.execute(
        "INSERT INTO read_states (user_id, channel_id, last_read_seq) VALUES ($1, $2, $3)",
        ben.id,
        uuid.UUID(srv.general),
        HISTORY,
    )
    await conn.execute("ANALYZE read_states")
    channels = [srv.general, *others]
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(
        "PREPARE unreads(uuid[], uuid[], timestamptz[], int[], text[]) AS "
        + messages_q._LIST_UNREADS_OF_PAIRS
    )
    readers = ",".join([str(ben.id)] * len(channels))
    plan = await explain_reads(
        conn,
        "EXECUTE unreads("
        f"'{{{readers}}}', '{{{','.join(channels)}}}', '{{{','.join(['NULL'] * len(channels))}}}',"
        f" '{{{','.join(['1'] * len(channels))}}}', ARRAY['{{}}'])",
        LONG,
    )
    walked = rows_walked(plan)
    assert walked <= 4 * UNREAD_CAP * len(channels), (walked, plan["Actual Total Time"])


async def test_the_mentions_kept_by_whom_they_name_follow_every_writer(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """message_mentions (migration 0041) is kept by triggers on messages: a send adds
    the rows of whom it names, an edit replaces them, a deletion takes them, a bulk
    deletion too, and a message removed from the table takes its rows with it. The
    counts read it: Ann's mention count follows."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ben, ann, cid)  # (ben, the owner, may ping anyone)
    crew = await role(client, srv, ben, "crew", 0, ann)
    channel = uuid.UUID(srv.general)

    async def rows() -> set[tuple[str, int]]:
        got = await conn.fetch(
            "SELECT target_id, seq FROM message_mentions WHERE channel_id = $1", channel
        )
        return {(str(r["target_id"]), r["seq"]) for r in got}

    async def anns_mentions() -> int:
        state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
        (general,) = [
            r for s in state["servers"] for r in s["read_states"] if r["channel_id"] == srv.general
        ]
        return int(general["mention_count"])

    a = await say(client, ben, srv.general, f"<@{ann.id}> and <@{cid.id}> and <@{ann.id}>")
    b = await say(client, ben, srv.general, f"<@&{crew}> tonight")
    c = await say(client, ben, srv.general, "no one yet")
    assert await rows() == {
        (str(ann.id), a["seq"]),
        (str(cid.id), a["seq"]),
        (crew, b["seq"]),
    }
    assert await anns_mentions() == 2
    message = f"/api/channels/{srv.general}/messages"
    edited = await client.patch(
        f"{message}/{c['id']}", headers=ben.headers, json={"content": f"now <@{ann.id}>"}
    )
    assert edited.status_code == 200, edited.text
    edited = await client.patch(
        f"{message}/{a['id']}", headers=ben.headers, json={"content": f"only <@{cid.id}>"}
    )
    assert edited.status_code == 200, edited.text
    assert await rows() == {(str(cid.id), a["seq"]), (crew, b["seq"]), (str(ann.id), c["seq"])}
    assert await anns_mentions() == 2
    gone = await client.delete(f"{message}/{c['id']}", headers=ben.headers)
    assert gone.status_code == 204, gone.text
    assert await rows() == {(str(cid.id), a["seq"]), (crew, b["seq"])}
    assert await anns_mentions() == 1
    bulk = await client.post(
        f"{message}/bulk-delete", headers=ben.headers, json={"messages": [b["id"]]}
    )
    assert bulk.status_code == 200, bulk.text
    assert await rows() == {(str(cid.id), a["seq"])}
    assert await anns_mentions() == 0
    await conn.execute("DELETE FROM messages WHERE id = $1", uuid.UUID(a["id"]))
    assert await rows() == set()


async def test_a_blocked_authors_flood_of_mentions_is_walked_only_so_far(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Was: the mentions by someone the reader blocked were walked one by one, to be
    left out of the count: any member who named ben HISTORY times after he blocked them
    made every count of ben's there read all of them, on every `ready`. Now a count
    reads at most MENTION_WALK of his mentions after his read position."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    await _history(conn, srv.general, ann.id, mentions=[ben.id], deleted=False)
    blocked = await client.put(f"/api/users/@me/blocks/{ann.id}", headers=ben.headers)
    assert blocked.status_code == 204
    plan = await pairs_plan(conn, ben.id, srv.general, LONG)
    assert await pair_counts(conn, ben.id, srv.general) == (UNREAD_CAP, 0)
    walked = rows_walked(plan)
    assert walked <= 2 * MENTION_WALK + 4 * UNREAD_CAP, (walked, plan["Actual Total Time"])


async def test_a_blocked_authors_flood_of_mentions_in_a_conversation_is_walked_only_so_far(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, chat = await pair(client, make_user)
    await _history(conn, chat, ann.id, mentions=[ben.id], deleted=False)
    blocked = await client.put(f"/api/users/@me/blocks/{ann.id}", headers=ben.headers)
    assert blocked.status_code == 204
    plan = await conversations_plan(conn, ben.id, chat, LONG)
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    assert [(c["unread"], c["mention_count"]) for c in state["conversations"]] == [(UNREAD_CAP, 0)]
    walked = rows_walked(plan)
    assert walked <= 2 * MENTION_WALK + 4 * UNREAD_CAP, (walked, plan["Actual Total Time"])
