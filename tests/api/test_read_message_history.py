"""A member who sees a channel without READ_MESSAGE_HISTORY (README, "Without
READ_MESSAGE_HISTORY"): no write that names a message not their own (a reply, a
reaction, a pin, an edit, a deletion) reads it or tells whether it exists."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests import factories
from tests.factories import Community, MakeUser, TestUser
from tests.support import rows_read
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries.conversations import UNREAD_CAP
from xfchat.domain.permissions import Permission as P

HISTORY = int(P.READ_MESSAGE_HISTORY)
PARTY = "%F0%9F%8E%89"


async def _forgetful(
    client: httpx.AsyncClient, make_user: MakeUser, *grants: int
) -> tuple[TestUser, TestUser, Community, dict[str, Any]]:
    """ann's server, where ben (holding `grants` through a role) sees #general without
    READ_MESSAGE_HISTORY, and a message of ann's he may not read."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    if grants:
        await factories.role(client, srv, ann, "crew", sum(grants), ben)
    hidden = await factories.say(client, ann, srv.general, "the launch code is 1234")
    denied = await factories.override(client, ann, srv.general, "member", ben.id, deny=HISTORY)
    assert denied.status_code == 200, denied.text
    return ann, ben, srv, hidden


def _refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body = dict(response.json())
    assert body["code"] == "MISSING_PERMISSIONS" and body["missing"] == "READ_MESSAGE_HISTORY"
    return body


async def test_a_reply_without_read_message_history_is_403_for_any_id(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: 201, the reply's preview quoting the message he may not read (by POST or by
    PUT), while an unknown id was 400 INVALID_REPLY."""
    ann, ben, srv, hidden = await _forgetful(client, make_user)
    url = f"/api/channels/{srv.general}/messages"
    answers = []
    for target in (hidden["id"], str(uuid.uuid4())):
        body = {"content": "x", "reply_to_id": target}
        answers.append(_refused(await client.post(url, headers=ben.headers, json=body)))
        put = await client.put(f"{url}/{uuid.uuid4()}", headers=ben.headers, json=body)
        answers.append(_refused(put))
    assert all(a == answers[0] for a in answers), answers
    plain = await client.post(url, headers=ben.headers, json={"content": "hello"})
    assert plain.status_code == 201  # sending itself is his
    history = (await client.get(url, headers=ann.headers)).json()
    assert [m["content"] for m in history] == ["hello", "the launch code is 1234"]


async def test_adding_a_reaction_needs_read_message_history_and_removing_tells_nothing(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: 204 for a real message and 404 for an unknown id, an oracle of which
    messages exist."""
    ann, ben, srv, hidden = await _forgetful(client, make_user)
    url = f"/api/channels/{srv.general}/messages"
    own = await factories.say(client, ben, srv.general, "mine")
    adds = [
        _refused(await client.put(f"{url}/{mid}/reactions/{PARTY}/@me", headers=ben.headers))
        for mid in (hidden["id"], str(uuid.uuid4()), own["id"])
    ]
    assert adds[0] == adds[1] == adds[2]
    for mid in (hidden["id"], str(uuid.uuid4())):
        gone = await client.delete(f"{url}/{mid}/reactions/{PARTY}/@me", headers=ben.headers)
        assert gone.status_code == 204, gone.text
    reactions = (await client.get(f"{url}/{hidden['id']}", headers=ann.headers)).json()
    assert reactions["reactions"] == []


async def test_a_reaction_given_before_losing_the_history_can_be_taken_back(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    said = await factories.say(client, ann, srv.general, "hello")
    mine = f"/api/channels/{srv.general}/messages/{said['id']}/reactions/{PARTY}/@me"
    assert (await client.put(mine, headers=ben.headers)).status_code == 204
    await factories.override(client, ann, srv.general, "member", ben.id, deny=HISTORY)
    assert (await client.delete(mine, headers=ben.headers)).status_code == 204
    got = await client.get(
        f"/api/channels/{srv.general}/messages/{said['id']}", headers=ann.headers
    )
    assert got.json()["reactions"] == []


async def test_editing_or_deleting_another_message_without_the_history_tells_nothing(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: 403 NOT_MESSAGE_AUTHOR (or, for a moderator, a deletion) for a real message
    and 404 for an unknown id. One's own messages stay one's own."""
    ann, ben, srv, hidden = await _forgetful(client, make_user, int(P.MANAGE_MESSAGES))
    url = f"/api/channels/{srv.general}/messages"
    answers = []
    for mid in (hidden["id"], str(uuid.uuid4())):
        edit = await client.patch(f"{url}/{mid}", headers=ben.headers, json={"content": "y"})
        answers.append(_refused(edit))
        answers.append(_refused(await client.delete(f"{url}/{mid}", headers=ben.headers)))
    assert all(a == answers[0] for a in answers), answers
    got = await client.get(f"{url}/{hidden['id']}", headers=ann.headers)
    assert got.json()["content"] == "the launch code is 1234"  # not deleted
    own = await factories.say(client, ben, srv.general, "mine")
    edited = await client.patch(f"{url}/{own['id']}", headers=ben.headers, json={"content": "m"})
    assert edited.status_code == 200 and edited.json()["content"] == "m"
    assert (await client.delete(f"{url}/{own['id']}", headers=ben.headers)).status_code == 204


async def test_pinning_without_the_history_is_403_for_any_id(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    _, ben, srv, hidden = await _forgetful(client, make_user, int(P.MANAGE_MESSAGES))
    answers = [
        _refused(await call(f"/api/channels/{srv.general}/pins/{mid}", headers=ben.headers))
        for mid in (hidden["id"], str(uuid.uuid4()))
        for call in (client.put, client.delete)
    ]
    assert all(a == answers[0] for a in answers), answers


async def test_answers_to_an_author_without_the_history_quote_no_other_message(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: editing one's own reply (even to the same text), or repeating its send,
    answered with the preview of the message it answers as that message is now: a read
    of its current text on demand."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    url = f"/api/channels/{srv.general}/messages"
    target = await factories.say(client, ann, srv.general, "draft")
    mid = str(uuid.uuid4())
    body = {"content": "an answer", "reply_to_id": target["id"]}
    sent = await client.put(f"{url}/{mid}", headers=ben.headers, json=body)
    assert sent.status_code == 201 and sent.json()["reply_to"]["content"] == "draft"
    await factories.override(client, ann, srv.general, "member", ben.id, deny=HISTORY)
    await client.patch(f"{url}/{target['id']}", headers=ann.headers, json={"content": "SECRET"})
    again = await client.put(f"{url}/{mid}", headers=ben.headers, json=body)
    assert again.status_code == 200, again.text
    edit = await client.patch(f"{url}/{mid}", headers=ben.headers, json={"content": "an answer"})
    assert edit.status_code == 200, edit.text
    for answer in (again.json(), edit.json()):
        assert answer["reply_to_id"] == target["id"] and answer["reply_to"] is None, answer
        assert "SECRET" not in str(answer)
    # Whoever may read the history still sees the preview.
    seen = (await client.get(f"{url}/{mid}", headers=ann.headers)).json()
    assert seen["reply_to"]["content"] == "SECRET"


async def test_unread_counts_without_the_history_tell_nothing_of_messages_before_joining(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: a newcomer who sees #general without READ_MESSAGE_HISTORY got `unread` and
    `mention_count` over the whole history; by acknowledging each seq in turn he read,
    message by message, which of the older ones were deleted and which mentioned
    @everyone, though every read of them is refused."""
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await factories.community(client, ann, cid)
    denied = await factories.override(
        client, ann, srv.general, "role", srv.everyone_role, deny=HISTORY
    )
    assert denied.status_code == 200, denied.text
    await factories.role(client, srv, ann, "readers", HISTORY, cid)
    sent = [await factories.say(client, ann, srv.general, f"old {i}") for i in range(4)]
    await factories.say(client, ann, srv.general, "@everyone all hands")
    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{sent[1]['id']}", headers=ann.headers
    )
    assert gone.status_code == 204, gone.text
    joined = await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)
    assert joined.status_code == 201, joined.text

    async def counts(who: TestUser) -> tuple[int, int]:
        state = (await client.get("/api/users/@me/state", headers=who.headers)).json()
        (mine,) = [r for s in state["servers"] for r in s["read_states"]]
        return mine["unread"], mine["mention_count"]

    (first,) = joined.json()["read_states"]
    assert (first["unread"], first["mention_count"]) == (0, 0)
    seen = []
    for seq in range(6):
        acked = await client.put(
            f"/api/channels/{srv.general}/ack", headers=ben.headers, json={"seq": seq}
        )
        assert acked.status_code == 200, acked.text
        seen.append(await counts(ben))
    assert seen == [(0, 0)] * 6
    # What arrives after he joined is his (he receives it live), and counts.
    await client.put(f"/api/channels/{srv.general}/ack", headers=ben.headers, json={"seq": 0})
    await factories.say(client, ann, srv.general, "@everyone welcome")
    assert await counts(ben) == (1, 1)
    # A member who may read the history counts all of it, as before.
    assert await counts(cid) == (5, 2)


async def test_unread_counts_without_the_history_never_walk_the_history_before_joining(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: a newcomer's read position is 0, and the count of what they may count (what
    was written since they joined) walked every older message of the channel to pass
    over it, on every `ready` and every join: the whole history, where it should read
    at most UNREAD_CAP rows a count. (The plan as a channel among many gets it: by the
    channel's indexes, never a whole-table scan.)"""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann)
    denied = await factories.override(
        client, ann, srv.general, "role", srv.everyone_role, deny=HISTORY
    )
    assert denied.status_code == 200, denied.text
    general = uuid.UUID(srv.general)
    async with pool.acquire() as conn:
        for i in range(3 * UNREAD_CAP):
            await messages_q.insert_message(
                conn, message_id=uuid.uuid4(), channel_id=general, author_id=ann.id,
                content=f"old {i}",
            )  # fmt: skip
    joined = await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)
    assert joined.status_code == 201, joined.text
    assert joined.json()["read_states"][0]["unread"] == 0
    await factories.say(client, ann, srv.general, "welcome, ben")
    async with pool.acquire() as conn:
        (membership,) = await servers_q.list_memberships(conn, user_id=ben.id)
        async with conn.transaction():
            # (planned here, generic as the pool plans it, as for a channel among many:
            # by the channel's indexes, never a scan of the table)
            await conn.execute("SET LOCAL enable_seqscan = off")
            counted, walked = await rows_read(
                conn,
                lambda: conn.fetch(
                    messages_q._LIST_UNREADS_OF_PAIRS + " -- planned here",
                    [ben.id], [general], [membership.joined_at], [1], ["{}"],
                ),
            )  # fmt: skip
    assert [(r["unread"], r["mention_count"]) for r in counted] == [(1, 0)]
    # Each walk of the count, the first message after joining and the unread walk from
    # there (the mention count's, of nothing here), reads UNREAD_CAP rows at most.
    assert walked <= 2 * UNREAD_CAP, walked
