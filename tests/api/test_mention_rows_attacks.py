"""The mention counts read through message_mentions (migration 0041), attacked: what a
member who may write can make another member's mention count walk, in a server's
channel (`ready`, `GET /api/users/@me/state`, `channel.revealed`) and in a group
conversation, as the pool plans it (generic, once per connection). Measured over the
rows of `messages` and of `message_mentions` a plan read (kept, or removed by a filter)."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.api.test_unreads_walk_attacks import (
    HISTORY,
    LONG,
    _history,
    counted_within_the_cap,
    name,
)
from tests.factories import MakeUser, community, group, role, say
from tests.support import conversations_plan, pairs_plan, rows_walked
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries.conversations import UNREAD_CAP


async def test_many_unread_mentions_of_the_reader_stop_at_the_cap(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """ann names ben HISTORY times, unread: the count is UNREAD_CAP, and walks about that
    many of ben's mentions, not all HISTORY of them."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    await _history(conn, srv.general, ann.id, mentions=[ben.id], deleted=False)
    await conn.execute("ANALYZE message_mentions")
    await counted_within_the_cap(conn, ben.id, srv.general, (UNREAD_CAP, UNREAD_CAP))


async def test_a_groups_mention_count_does_not_walk_someone_elses_mentions(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """In a group, ann names cid HISTORY times, then ben once: ben's count walks his own
    mentions there, not cid's, nor the group's history."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    chat = str((await group(client, ann, ben, cid))["id"])
    await _history(conn, chat, ann.id, mentions=[cid.id], deleted=False)
    await name(conn, chat, ann.id, [ben.id])
    plan = await conversations_plan(conn, ben.id, chat, LONG)
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    assert [(c["unread"], c["mention_count"]) for c in state["conversations"]] == [(UNREAD_CAP, 1)]
    read = rows_walked(plan)
    assert read <= 4 * UNREAD_CAP, (read, plan["Actual Total Time"], HISTORY)


async def test_a_message_naming_the_reader_many_ways_counts_once(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Named twice, by a role of theirs and by @everyone in one message: one mention; a
    blocked author's, none; a role taken away names them no more."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ben, ann, cid)  # (ben, the owner, may ping anyone)
    crew = await role(client, srv, ben, "crew", 0, ann)
    crew2 = await role(client, srv, ben, "crew2", 0, ann)

    async def anns_mentions() -> int:
        state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
        (general,) = [
            r for s in state["servers"] for r in s["read_states"] if r["channel_id"] == srv.general
        ]
        return int(general["mention_count"])

    await say(client, ben, srv.general, f"<@{ann.id}> <@{ann.id}> <@&{crew}> <@&{crew2}> @everyone")
    assert await anns_mentions() == 1
    await say(client, ben, srv.general, f"<@&{crew}> <@&{crew2}>")
    assert await anns_mentions() == 2
    await say(client, cid, srv.general, f"<@{ann.id}> @everyone")
    assert await anns_mentions() == 3
    blocked = await client.put(f"/api/users/@me/blocks/{cid.id}", headers=ann.headers)
    assert blocked.status_code in (200, 201, 204), blocked.text
    assert await anns_mentions() == 2
    for r in (crew, crew2):
        taken = await client.delete(srv.url(f"/members/{ann.id}/roles/{r}"), headers=ben.headers)
        assert taken.status_code == 204, taken.text
    assert await anns_mentions() == 1


async def test_a_role_named_many_times_stops_at_the_cap(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """ann names a role of ben's, and @everyone, in HISTORY messages, unread: ben's count
    is UNREAD_CAP, walking about that many (the reader's roles as a `ready` passes them)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    crew = uuid.UUID(await role(client, srv, ann, "crew", 0, ben))
    await _history(conn, srv.general, ann.id, mentions=[], deleted=False)
    await conn.execute(
        "UPDATE messages SET mention_roles = $2, mention_everyone = true WHERE channel_id = $1",
        uuid.UUID(srv.general),
        [crew],
        timeout=LONG,
    )
    # (the rows' old versions gone from the indexes, as autovacuum takes them: the walks
    # are counted by the index entries they read, and the update left one dead per row)
    await conn.execute("VACUUM ANALYZE messages", timeout=LONG)
    await conn.execute("ANALYZE message_mentions")
    plan = await pairs_plan(conn, ben.id, srv.general, LONG, roles=(crew,))
    (row,) = await messages_q.list_unreads_of_pairs(
        conn,
        user_ids=[ben.id],
        channel_ids=[uuid.UUID(srv.general)],
        since=[None],
        role_sets=[[crew]],
        role_set=[0],
    )
    assert (row.unread, row.mention_count) == (UNREAD_CAP, UNREAD_CAP)
    read = rows_walked(plan)
    assert read <= 4 * UNREAD_CAP, (read, plan["Actual Total Time"])
