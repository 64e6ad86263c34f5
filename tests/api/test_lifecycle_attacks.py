"""Attacks on a message's lifecycle (edits, deletion, reactions, pins, replies, files,
search) by a member with an account: what a deleted message leaves behind, and what a
message shows of another channel."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser, community


async def test_a_deleted_messages_nonce_is_gone_from_history_events_and_repeats(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A nonce is up to 64 characters the sender chose, shown with the message. Was: a
    deleted message's tombstone kept showing it to everyone who reads the channel (its
    history, the message, and the events a resume replays), when what the author wrote
    is to be gone with it (as Discord keeps no nonce past the send). The row keeps it,
    so that the author's retry of the send is still answered as the send it repeats."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    url = f"/api/channels/{srv.general}/messages"
    nonce = "meet at the old mill at 9"
    sent = await client.post(url, headers=ann.headers, json={"content": "see you", "nonce": nonce})
    assert sent.status_code == 201 and sent.json()["nonce"] == nonce
    mid = sent.json()["id"]
    edited = await client.patch(f"{url}/{mid}", headers=ann.headers, json={"content": "later"})
    assert edited.status_code == 200 and edited.json()["nonce"] == nonce
    assert (await client.delete(f"{url}/{mid}", headers=ann.headers)).status_code == 204
    one = await client.get(f"{url}/{mid}", headers=ben.headers)
    assert one.status_code == 200 and one.json()["deleted"] and one.json()["nonce"] is None
    history = (await client.get(url, headers=ben.headers)).json()
    assert [(m["id"], m["nonce"]) for m in history] == [(mid, None)]
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
    own = [d for t, d in events if t in ("message.created", "message.updated")]
    assert len(own) == 2 and all(d["id"] == mid and d["nonce"] is None for d in own)
    assert all(nonce not in str(d) for _, d in events)
    # The author's retry is still the send it repeats: answered, nothing stored again.
    again = await client.post(url, headers=ann.headers, json={"content": "see you", "nonce": nonce})
    assert again.status_code == 200 and again.json()["id"] == mid
    assert again.json()["deleted"] and again.json()["nonce"] is None
    assert [m["id"] for m in (await client.get(url, headers=ben.headers)).json()] == [mid]
