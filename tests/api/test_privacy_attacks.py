"""Attacks on privacy around blocks and direct messages that found something to mend,
kept as tests that would fail if it came back."""

from __future__ import annotations

from uuid import UUID

import httpx

from tests.factories import MakeUser, events_of, pair, say


async def receipts_seen_by(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], dm: str
) -> dict[str, int]:
    r = await client.get(f"/api/channels/{dm}/read-states", headers=viewer_headers)
    assert r.status_code == 200, r.text
    return {s["user_id"]: s["last_read_seq"] for s in r.json()}


async def test_a_closed_direct_conversation_shows_no_read_receipts_either_way(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    # ann writes to ben; ben blocks her. What ben reads afterwards (an activity, as
    # presence is, which a direct conversation carries only between friends) is not
    # ann's to follow, nor hers his; and as a closure either way hides them, it never
    # tells a block from a choice of friends only.
    ann, ben, dm = await pair(client, make_user)
    first = await say(client, ann, dm, "hello?")
    second = await say(client, ann, dm, "are you there?")
    assert (
        await client.put(f"/api/users/@me/blocks/{ann.id}", headers=ben.headers)
    ).status_code == 204
    for who, seq in ((ben, first["seq"]), (ben, second["seq"]), (ann, second["seq"])):
        r = await client.put(f"/api/channels/{dm}/ack", headers=who.headers, json={"seq": seq})
        assert r.status_code == 200, r.text
    assert str(ben.id) not in await receipts_seen_by(client, ann.headers, dm)
    assert str(ann.id) not in await receipts_seen_by(client, ben.headers, dm)
    assert (await receipts_seen_by(client, ben.headers, dm))[str(ben.id)] == second["seq"]
    assert ann.pool is not None
    async with ann.pool.acquire() as conn:
        told = await events_of(conn, "channel", UUID(dm))
    receipts = [d for t, d in told if t == "read_state.updated"]
    assert receipts == [], receipts  # (each came to its reader's own stream alone)


async def test_a_choice_of_friends_only_hides_read_receipts_as_a_block_does(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    said = await say(client, ann, dm, "hello?")
    r = await client.put(
        "/api/users/@me/privacy", headers=ben.headers, json={"direct_messages": "friends"}
    )
    assert r.status_code == 200, r.text
    r = await client.put(f"/api/channels/{dm}/ack", headers=ben.headers, json={"seq": said["seq"]})
    assert r.status_code == 200, r.text
    assert str(ben.id) not in await receipts_seen_by(client, ann.headers, dm)
    # Open again, receipts show again.
    r = await client.put(
        "/api/users/@me/privacy", headers=ben.headers, json={"direct_messages": "everyone"}
    )
    assert r.status_code == 200, r.text
    assert (await receipts_seen_by(client, ann.headers, dm))[str(ben.id)] == said["seq"]
