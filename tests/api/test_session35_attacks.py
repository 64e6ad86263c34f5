"""An outside attack on the areas attacked least (invites, pins, reactions, read
receipts, voice moderation, Braid's Parents, history's around=): each FINDING failed on
the code it attacked and holds since its mend; the HOLDS record what was tried and held.
"""

from __future__ import annotations

import asyncpg
import httpx

from tests.factories import MakeUser, pair, say

# ------------------------------------------------- FINDING: read receipts said again


async def test_acking_the_same_seq_again_tells_nobody(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """An ack in a conversation is a read receipt to every participant (up to 25 in a
    group): one naming the seq already stored changed nothing but still wrote an event
    and sent it to all of them, 600 times a minute under the API's own limit. Now it
    answers the position as it stands, and nobody is told."""
    ann, ben, dm = await pair(client, make_user, "group")
    await say(client, ben, dm, "read me")
    await say(client, ben, dm, "and me")
    answers = [
        await client.put(f"/api/channels/{dm}/ack", headers=ann.headers, json={"seq": seq})
        for seq in (1, 1, 1, 2, 2, 1)
    ]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert [a.json()["last_read_seq"] for a in answers] == [1, 1, 1, 2, 2, 1]
    assert answers[1].json()["updated_at"] == answers[0].json()["updated_at"]
    async with pool.acquire() as conn:
        told = await conn.fetch(
            "SELECT data->>'last_read_seq' AS seq FROM events"
            " WHERE type = 'read_state.updated' AND data->>'user_id' = $1 ORDER BY pos",
            str(ann.id),
        )
    assert [r["seq"] for r in told] == ["1", "2", "1"]
