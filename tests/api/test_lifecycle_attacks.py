"""Attacks on a message's lifecycle (edits, deletion, reactions, pins, replies, files,
search) by a member with an account: what a deleted message leaves behind, and what a
message shows of another channel."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser, community, override, role
from xfchat.domain.permissions import Permission as P


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


async def test_a_bans_deletion_count_tells_a_reader_only_of_the_channels_they_see(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A ban with `delete_message_seconds` deletes the user's messages in every channel,
    those its moderator cannot see too. Was: its audit entry's `deleted_messages` counted
    them all for every reader of the audit log, so a moderator kept out of #secret
    learnt, from the count less the deletions they saw, how many messages the banned
    user had sent there (the audit log leaves out every entry about a hidden channel).
    Now a reader is shown the count of the channels they see, by channel; the owner all."""
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.BAN_MEMBERS | P.VIEW_AUDIT_LOG), mod)
    secret = str((await factories.server_channel(client, srv, ann, "secret"))["id"])
    hidden = await override(client, ann, secret, "member", mod.id, deny=int(P.VIEW_CHANNEL))
    assert hidden.status_code == 200, hidden.text
    await factories.say(client, ben, srv.general, "spam")
    for i in range(3):
        await factories.say(client, ben, secret, f"plotting {i}")
    banned = await client.put(
        srv.url(f"/bans/{ben.id}"), headers=mod.headers, json={"delete_message_seconds": 3600}
    )
    assert banned.status_code == 204, banned.text
    url = srv.url("/audit-log?action=member.banned")
    (seen_by_mod,) = (await client.get(url, headers=mod.headers)).json()
    assert seen_by_mod["changes"] == {
        "delete_message_seconds": 3600,
        "deleted_messages": 1,
        "deleted_in": {srv.general: 1},
    }
    (seen_by_owner,) = (await client.get(url, headers=ann.headers)).json()
    assert seen_by_owner["changes"] == {
        "delete_message_seconds": 3600,
        "deleted_messages": 4,
        "deleted_in": {srv.general: 1, secret: 3},
    }
