"""What counting a revealed channel's read states walks (a role change that
reveals a channel with a long history to members who never read it)."""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx

from tests.factories import MakeUser, community, override, server_channel
from tests.support import pairs_plan, rows_walked
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries.conversations import UNREAD_CAP
from xfchat.domain.permissions import Permission

HISTORY = 20_000


async def test_counting_a_revealed_channel_walks_at_most_the_cap(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Was: both counts read every message after the read position (20,000 here): the
    mention count walked all of them for want of an index of messages that mention
    anyone (migration 0039), and the unread count, in a channel of one author, was
    planned as a read and sort of them all (`author_id IS DISTINCT FROM` estimated to
    pass no row). On every `ready`, and for each member a reveal counts."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    secret = (await server_channel(client, srv, ann, "secret"))["id"]
    deny = int(Permission.VIEW_CHANNEL)
    assert (await override(client, ann, secret, "role", srv.everyone_role, deny=deny)).is_success
    await conn.execute(
        """
        WITH s AS (SELECT generate_series(1, $3::int) AS i)
        INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
        SELECT gen_random_uuid(), $1, i, $2, 'old ' || i, now() - interval '1 day'
        FROM s
        """,
        uuid.UUID(secret),
        ann.id,
        HISTORY,
    )
    await conn.execute(
        "UPDATE channels SET last_seq = $2 WHERE id = $1", uuid.UUID(secret), HISTORY
    )
    await conn.execute("ANALYZE messages")
    # What settle asks for ben once a role lets him see it (he reads its history).
    plan = await pairs_plan(conn, ben.id, secret)
    t0 = time.monotonic()
    rows = await messages_q.list_unreads_of_pairs(
        conn,
        user_ids=[ben.id],
        channel_ids=[uuid.UUID(secret)],
        since=[None],
        role_sets=[[]],
        role_set=[0],
    )
    took = time.monotonic() - t0
    assert rows[0].unread == UNREAD_CAP and rows[0].mention_count == 0
    walked = rows_walked(plan)
    # "both counts capped at UNREAD_CAP; each walks at most that many rows"
    assert walked <= 4 * UNREAD_CAP, (walked, took)
