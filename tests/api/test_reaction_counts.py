"""A message's reactions summed up in reaction_counts (migration 0049): kept by every
writer of reactions, read by every view of a message instead of all of its reactions,
and in the order their emoji came."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.factories import (
    MakeUser,
    TestUser,
    community,
    lock_waiters,
    say,
    server_channel,
)
from tests.support import rows_read
from xfchat.db.migrate import Migrator
from xfchat.db.queries import messages as messages_q

COUNTED = "SELECT message_id, emoji, count FROM reaction_counts ORDER BY 1, 2"
SUMMED = (
    "SELECT message_id, emoji, count(*)::int AS count FROM reactions"
    " GROUP BY message_id, emoji ORDER BY 1, 2"
)


# (what a search of `has:reaction` finds them by: migration 0051)
IN_ANOTHER_CHANNEL = """
    SELECT count(*) FROM reaction_counts rc LEFT JOIN messages m ON m.id = rc.message_id
    WHERE rc.channel_id IS DISTINCT FROM m.channel_id
"""


async def kept(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    """The counts, which are those of the reactions there, each in its message's
    channel."""
    counted = [tuple(r) for r in await conn.fetch(COUNTED)]
    assert counted == [tuple(r) for r in await conn.fetch(SUMMED)]
    assert await conn.fetchval(IN_ANOTHER_CHANNEL) == 0
    return counted


async def react(
    client: httpx.AsyncClient, who: TestUser, channel: str, message: str, emoji: str, add: bool
) -> None:
    url = f"/api/channels/{channel}/messages/{message}/reactions/{emoji}/@me"
    done = await (client.put if add else client.delete)(url, headers=who.headers)
    assert done.status_code == 204, done.text


async def shown(client: httpx.AsyncClient, who: TestUser, channel: str) -> list[Any]:
    """Each message's reactions, oldest message first, as `who` sees them."""
    page = await client.get(f"/api/channels/{channel}/messages", headers=who.headers)
    assert page.status_code == 200, page.text
    return [[(r["emoji"], r["count"], r["me"]) for r in m["reactions"]] for m in page.json()[::-1]]


async def test_the_counts_follow_every_writer_of_reactions(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    first = (await say(client, ann, srv.general, "one"))["id"]
    second = (await say(client, ann, srv.general, "two"))["id"]
    for who in (ann, ben, cid):
        await react(client, who, srv.general, first, "👍", True)
    await react(client, ben, srv.general, first, "🎉", True)
    await react(client, cid, srv.general, second, "👍", True)
    assert len(await kept(conn)) == 3
    assert await shown(client, ben, srv.general) == [
        [("👍", 3, True), ("🎉", 1, True)],
        [("👍", 1, False)],
    ]
    # taken back: one of three, and the only one (the emoji goes)
    await react(client, ann, srv.general, first, "👍", False)
    await react(client, ben, srv.general, first, "🎉", False)
    assert await shown(client, ben, srv.general) == [[("👍", 2, True)], [("👍", 1, False)]]
    await kept(conn)
    # a message's deletion takes its reactions
    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{second}", headers=ann.headers
    )
    assert gone.status_code == 204, gone.text
    assert len(await kept(conn)) == 1
    # several messages' reactions at once, in one statement (as an account's erasure
    # would): every count they were part of
    third = (await say(client, ann, srv.general, "three"))["id"]
    for emoji in ("a", "b"):
        await react(client, cid, srv.general, third, emoji, True)
    await conn.execute("DELETE FROM reactions WHERE user_id = $1", cid.id)
    assert await kept(conn) == [(uuid.UUID(first), "👍", 1)]
    # a message of another channel: its counts are in that channel
    random = (await server_channel(client, srv, ann, "random"))["id"]
    elsewhere = (await say(client, ann, random, "elsewhere"))["id"]
    await react(client, ben, random, elsewhere, "a", True)
    assert len(await kept(conn)) == 2
    await react(client, ben, random, elsewhere, "a", False)
    # a message removed from the table takes its counts with it
    await conn.execute("DELETE FROM messages WHERE id = $1", uuid.UUID(first))
    assert await kept(conn) == []


async def test_reactions_taken_back_while_one_comes_are_counted_from_it(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
) -> None:
    """Three reactions taken back in one statement (as a message's deletion takes them)
    while a fourth, added meanwhile, is not committed yet: the statement waits for the
    count row, then counts down from 4 (was: from the 3 its snapshot saw, 3 - 3 = 0,
    CHECK (count > 0) failed and the deletion was refused)."""
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    srv = await community(client, ann, ben, cid)
    said = uuid.UUID((await say(client, ann, srv.general, "vote"))["id"])
    for who in (ann, ben, cid):
        await react(client, who, srv.general, str(said), "👍", True)
    adding, taking = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        added = adding.transaction()
        await added.start()
        await adding.execute(
            "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, '👍', $2)",
            said,
            dan.id,
        )
        taken = asyncio.ensure_future(
            taking.execute("DELETE FROM reactions WHERE message_id = $1", said)
        )
        await lock_waiters(pool)
        await added.commit()
        assert await taken == "DELETE 3"
    finally:
        await adding.close()
        await taking.close()
    assert await kept(conn) == [(said, "👍", 1)]


async def test_an_emoji_keeps_its_place_while_anyone_reacts_with_it(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """As on Discord: the first to react with 👍 taking it back moves no pill (was: the
    order was by the earliest reaction still there, and 👍 went after 🎉)."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    said = (await say(client, ann, srv.general, "vote"))["id"]
    await react(client, ann, srv.general, said, "👍", True)
    await react(client, ben, srv.general, said, "🎉", True)
    await react(client, cid, srv.general, said, "👍", True)
    await react(client, ann, srv.general, said, "👍", False)
    assert await shown(client, ann, srv.general) == [[("👍", 1, False), ("🎉", 1, False)]]
    # gone, then back: it comes last
    await react(client, cid, srv.general, said, "👍", False)
    await react(client, ann, srv.general, said, "👍", True)
    assert await shown(client, ann, srv.general) == [[("🎉", 1, False), ("👍", 1, True)]]


async def test_an_emoji_comes_when_its_reaction_is_written(
    client: httpx.AsyncClient, make_user: MakeUser, db_url: str, conn: asyncpg.Connection
) -> None:
    """A toggle begun first but written second (it waited for the message's lock, as
    react takes it) comes second, as its event does and as clients place its pill (was:
    first, by its transaction's start: the pills swapped at a reload)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    said = uuid.UUID((await say(client, ann, srv.general, "vote"))["id"])
    first = await asyncpg.connect(db_url)
    try:
        begun = first.transaction()
        await begun.start()
        await first.execute("SELECT 1")  # (its transaction, and now(), begin here)
        await react(client, ben, srv.general, str(said), "🎉", True)
        await first.execute(
            "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, '👍', $2)",
            said,
            ann.id,
        )
        await begun.commit()
    finally:
        await first.close()
    emoji = await messages_q.list_reaction_emoji(conn, message_id=said, user_id=ann.id)
    assert [r.emoji for r in emoji] == ["🎉", "👍"]


async def test_a_view_reads_the_counts_not_every_reaction(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A message 2,000 people reacted to, with two emoji: a page of history reads its
    two count rows and the viewer's own reactions by their key (was: all 2,000 rows,
    at every view of it, and at every reaction added or taken back)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    said = (await say(client, ann, srv.general, "popular"))["id"]
    await conn.execute(
        """
        WITH many AS (
            INSERT INTO users (username, email, email_key, password_hash)
            SELECT 'fan' || i, 'fan' || i || '@example.com', 'fan' || i || '@example.com', 'x'
            FROM generate_series(1, 2000) i RETURNING id)
        INSERT INTO reactions (message_id, emoji, user_id)
        SELECT $1, CASE WHEN random() < 0.5 THEN '👍' ELSE '🎉' END, id FROM many
        """,
        uuid.UUID(said),
    )
    await conn.execute("ANALYZE reactions")
    await react(client, ben, srv.general, said, "👍", True)  # (a toggle: by the counts too)
    (view,), read = await rows_read(
        conn,
        lambda: messages_q.list_messages(
            conn, viewer=ben.id, channel_id=uuid.UUID(srv.general), limit=50
        ),
        tables=("reactions", "reaction_counts"),
    )
    assert sum(r["count"] for r in view.reactions) == 2001
    assert {r["emoji"]: r["me"] for r in view.reactions} == {"👍": True, "🎉": False}
    assert read <= 10, read


async def test_the_migration_counts_the_reactions_already_there(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    said = (await say(client, ann, srv.general, "before"))["id"]
    migrator = Migrator(conn)
    since = [s for s in await migrator.status() if s.version >= 49 and s.status == "applied"]
    # (0049 and any migration after it: 0060's down destroys the audit log's old values)
    reverted = await migrator.revert(len(since), destroy_data=True)
    assert reverted[-1].version == 49
    for who, emoji in ((ann, "👍"), (ben, "👍"), (ben, "🎉")):
        await conn.execute(
            "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3)",
            uuid.UUID(said),
            emoji,
            who.id,
        )
    await migrator.run()
    assert await kept(conn) == [(uuid.UUID(said), "🎉", 1), (uuid.UUID(said), "👍", 2)]
