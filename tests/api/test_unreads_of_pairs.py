"""list_unreads_of_pairs, many readers in one statement (roles, blocks, pairs)."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.factories import MakeUser, community, role, say
from xfchat.db.queries import messages as messages_q


async def test_each_pair_counts_with_its_own_roles_blocks_and_order(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    srv = await community(client, ann, ben, cid, dan)
    r1 = await role(client, srv, ann, "r1", 0, ben)
    r2 = await role(client, srv, ann, "r2", 0, ben)
    ok = await client.patch(
        srv.url(f"/roles/{r1}"), headers=ann.headers, json={"mentionable": True}
    )
    assert ok.is_success, ok.text
    blocked = await client.put(f"/api/users/@me/blocks/{dan.id}", headers=cid.headers)
    assert blocked.is_success, blocked.text
    await say(client, dan, srv.general, f"hi <@&{r1}> and <@{cid.id}>")
    await say(client, ann, srv.general, "plain")
    g = uuid.UUID(srv.general)
    rows = await messages_q.list_unreads_of_pairs(
        conn,
        user_ids=[ben.id, cid.id, dan.id, ben.id, ann.id],
        channel_ids=[g, g, g, g, g],
        since=[None] * 5,
        role_sets=[[uuid.UUID(r2), uuid.UUID(r1)], [], [uuid.UUID(r2)]],
        role_set=[0, 1, 1, 2, 1],
    )
    got = sorted((r.user_id, r.unread, r.mention_count) for r in rows)  # (in no order)
    assert got == sorted(
        [
            (ben.id, 2, 1),  # holds r1
            (cid.id, 2, 0),  # mentioned, but by someone blocked
            (dan.id, 1, 0),  # own message
            (ben.id, 2, 0),  # (asked without r1)
            (ann.id, 0, 0),  # (her send read the channel)
        ]
    ), got
