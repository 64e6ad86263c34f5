from __future__ import annotations

import asyncio
import gzip
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import AppWith, MakeUser, pair
from tests.support import until_one_waits_for_a_lock
from xfchat.db.queries.messages import MAX_EDITS
from xfchat.domain.messages import MAX_REACTION_EMOJI
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


async def created_events(conn: asyncpg.Connection, conversation_id: str) -> list[dict]:
    return [
        d
        for t, d in await factories.events_of(conn, "channel", UUID(conversation_id))
        if t == "message.created"
    ]


async def test_put_with_the_same_id_and_body_is_idempotent(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, _, dm = await pair(client, make_user)
    mid = str(uuid.uuid4())
    url = f"/api/channels/{dm}/messages/{mid}"
    first = await client.put(url, headers=ann.headers, json={"content": "once"})
    assert first.status_code == 201, first.text
    assert first.headers["version"] == f'"{mid}"'
    assert first.json()["id"] == mid and first.json()["seq"] == 1
    again = await client.put(url, headers=ann.headers, json={"content": "once"})
    assert again.status_code == 200 and again.json()["id"] == mid and again.json()["seq"] == 1
    assert len(await created_events(conn, dm)) == 1  # the repeat broadcast nothing
    other = await client.put(url, headers=ann.headers, json={"content": "twice"})
    assert other.status_code == 409 and other.json()["code"] == "MESSAGE_ID_CONFLICT"
    assert await conn.fetchval("SELECT count(*) FROM messages") == 1


async def test_a_retry_is_told_its_send_was_stored_after_an_edit_a_delete_or_a_timeout(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: a retry of a send that had since been edited or deleted was 409 (the stored
    body differed), and one by an author who had since lost SEND_MESSAGES was 403,
    though it was stored and delivered: a client believing either sends it again."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    url = f"/api/channels/{srv.general}/messages"
    edited, kept = str(uuid.uuid4()), str(uuid.uuid4())
    for mid in (edited, kept):
        sent = await client.put(f"{url}/{mid}", headers=ben.headers, json={"content": "draft"})
        assert sent.status_code == 201
    await client.patch(f"{url}/{edited}", headers=ben.headers, json={"content": "final"})
    gone = await client.post(url, headers=ben.headers, json={"content": "oops", "nonce": "n-1"})
    await client.delete(f"{url}/{gone.json()['id']}", headers=ben.headers)
    again = await client.put(f"{url}/{edited}", headers=ben.headers, json={"content": "draft"})
    assert again.status_code == 200 and again.json()["content"] == "final", again.text
    again = await client.post(url, headers=ben.headers, json={"content": "oops", "nonce": "n-1"})
    assert again.status_code == 200 and again.json()["id"] == gone.json()["id"], again.text
    # Another body under an id never edited is still a conflict.
    other = await client.put(f"{url}/{kept}", headers=ben.headers, json={"content": "x"})
    assert other.status_code == 409 and other.json()["code"] == "MESSAGE_ID_CONFLICT"
    muted = await factories.override(
        client, ann, srv.general, "member", ben.id, deny=int(P.SEND_MESSAGES)
    )
    assert muted.status_code == 200
    again = await client.put(f"{url}/{kept}", headers=ben.headers, json={"content": "draft"})
    assert again.status_code == 200 and again.json()["id"] == kept, again.text
    new = await client.put(f"{url}/{uuid.uuid4()}", headers=ben.headers, json={"content": "x"})
    assert new.status_code == 403 and new.json()["code"] == "MISSING_PERMISSIONS"
    await factories.override(client, ann, srv.general, "member", ben.id, deny=int(P.VIEW_CHANNEL))
    hidden = await client.put(f"{url}/{kept}", headers=ben.headers, json={"content": "draft"})
    assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_a_reply_or_an_edit_racing_its_targets_deletion_keeps_no_text_of_it(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: a reply (or an edit of one) committed while its target's deletion was in
    flight was acknowledged with the target's text in its preview, and the deletion's
    scrub, which rewrites only what committed before it, left that text in the log
    for every resume to replay. Here the deletion is held open on its own connection."""
    ann, ben, dm = await pair(client, make_user)
    target = await factories.say(client, ann, dm, "SECRET-0")
    url = f"/api/channels/{dm}/messages"
    reply = await client.post(
        url, headers=ben.headers, json={"content": "re", "reply_to_id": target["id"]}
    )
    assert reply.status_code == 201
    deleting = await asyncpg.connect(settings.database_url)
    try:
        for attempt in ("send", "edit"):
            if attempt == "edit":
                target = await factories.say(client, ann, dm, "SECRET-1")
                reply = await client.post(
                    url, headers=ben.headers, json={"content": "re", "reply_to_id": target["id"]}
                )
            tx = deleting.transaction()
            await tx.start()
            await deleting.execute(
                "SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", UUID(target["id"])
            )
            if attempt == "send":
                request = client.post(
                    url, headers=ben.headers, json={"content": "re 2", "reply_to_id": target["id"]}
                )
            else:
                request = client.patch(
                    f"{url}/{reply.json()['id']}", headers=ben.headers, json={"content": "re!"}
                )
            answer = asyncio.ensure_future(request)
            await until_one_waits_for_a_lock(deleting, answer)
            assert not answer.done(), (await answer).text  # it waits for the deletion
            await deleting.execute(
                "UPDATE messages SET deleted_at = now(), content = '' WHERE id = $1",
                UUID(target["id"]),
            )
            await tx.commit()
            response = await answer
            if attempt == "send":
                assert response.status_code == 400 and response.json()["code"] == "INVALID_REPLY"
            else:
                assert response.status_code == 200
                assert "SECRET" not in response.text, response.text
    finally:
        await deleting.close()


async def test_no_write_lands_between_losing_sight_of_a_channel_and_being_told(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: a reaction, an ack, an edit, a deletion or typing judged while a change
    hiding the channel from its author was under way was written (or announced) after
    it, acknowledged and broadcast: the others saw eve act in a channel eve no longer
    saw. Now each waits for the change (held open here on its own connection) and is
    then refused."""
    ann, eve = await make_user("ann"), await make_user("eve")
    srv = await factories.community(client, ann, eve)
    url = f"/api/channels/{srv.general}/messages"
    mine = await factories.say(client, eve, srv.general, "mine")
    theirs = await factories.say(client, ann, srv.general, "theirs")
    writes = {
        "react": lambda: client.put(f"{url}/{theirs['id']}/reactions/👍/@me", headers=eve.headers),
        "ack": lambda: client.put(
            f"/api/channels/{srv.general}/ack", headers=eve.headers, json={"seq": theirs["seq"]}
        ),
        "edit": lambda: client.patch(
            f"{url}/{mine['id']}", headers=eve.headers, json={"content": "edited"}
        ),
        "delete": lambda: client.delete(f"{url}/{mine['id']}", headers=eve.headers),
        # (not stored, but its notification too: main sent it at once, ahead of the change)
        "typing": lambda: client.post(f"/api/channels/{srv.general}/typing", headers=eve.headers),
    }
    hiding = await asyncpg.connect(settings.database_url)
    try:
        for name, write in writes.items():
            tx = hiding.transaction()
            await tx.start()
            await hiding.execute(  # (as every change of who may see a channel does)
                "WITH lock AS (SELECT id FROM channels WHERE id = $1 FOR UPDATE)"
                " UPDATE channels c SET access_version = c.access_version + 1"
                " FROM lock WHERE c.id = lock.id",
                UUID(str(srv.general)),
            )
            await hiding.execute(
                "INSERT INTO channel_permission_overrides (channel_id, user_id, deny)"
                " VALUES ($1, $2, $3)",
                UUID(str(srv.general)),
                UUID(str(eve.id)),
                int(P.VIEW_CHANNEL),
            )
            answer = asyncio.ensure_future(write())
            await until_one_waits_for_a_lock(hiding, answer)
            assert not answer.done(), (name, (await answer).text)
            await tx.commit()
            response = await answer
            assert response.status_code == 404, (name, response.text)
            assert response.json()["code"] == "CHANNEL_NOT_FOUND"
            await hiding.execute(
                "DELETE FROM channel_permission_overrides WHERE channel_id = $1",
                UUID(str(srv.general)),
            )
    finally:
        await hiding.close()


Locked = tuple[str, Any]  # a statement of the other transaction and its one argument


async def no_deadlock_with(
    settings: Settings, first: list[Locked], then: Locked, request: Any
) -> httpx.Response:
    """Hold another transaction's locks (`first`), start `request`, let it reach its
    locks, then take the other transaction's last one (`then`): in the order the
    request used to lock, PostgreSQL found a deadlock here. (In both orders the request
    waits for a lock the other holds before the other asks for its last one.)"""
    other = await asyncpg.connect(settings.database_url)
    try:
        async with other.transaction():
            for sql, arg in first:
                await other.execute(sql, arg)
            answer = asyncio.ensure_future(request)
            await until_one_waits_for_a_lock(other, answer)
            await other.execute(*then)  # (was: DeadlockDetected, here or in the request)
        return await answer
    finally:
        await other.close()


async def test_moderation_pins_and_edits_take_their_locks_in_the_order_of_the_others(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: three deadlocks (503 DATABASE_CONFLICT, a send's CHANNEL_BUSY), each from the
    share lock of the channel or of a reply's target taken in another order than a
    concurrent writer's. Here the other writer is held open on its own connection."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    url = f"/api/channels/{srv.general}/messages"
    channel, server = UUID(str(srv.general)), UUID(str(srv.id))
    said = await factories.say(client, ben, srv.general, "to delete")
    # A moderator's deletion (audited) against a change of the server (kick, roles):
    # the server's row, then its channels'.
    deleted = await no_deadlock_with(
        settings,
        [("SELECT 1 FROM servers WHERE id = $1 FOR UPDATE", server)],
        ("SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", channel),
        client.delete(f"{url}/{said['id']}", headers=ann.headers),
    )
    assert deleted.status_code == 204, deleted.text
    # A pin against a send replying to the pinned message: the message, then the
    # channel's counter.
    target = await factories.say(client, ben, srv.general, "to pin")
    pinned = await no_deadlock_with(
        settings,
        [
            ("SELECT 1 FROM channels WHERE id = $1 FOR KEY SHARE", channel),
            ("SELECT 1 FROM messages WHERE id = $1 FOR SHARE", UUID(target["id"])),
        ],
        ("UPDATE channels SET last_seq = last_seq WHERE id = $1", channel),
        client.put(f"/api/channels/{srv.general}/pins/{target['id']}", headers=ann.headers),
    )
    assert pinned.status_code == 204, pinned.text
    # An edit of a reply against a bulk deletion of both: in id order, either way round.
    for target_first in (True, False):
        x_id, r_id = sorted([str(uuid.uuid4()), str(uuid.uuid4())], reverse=not target_first)
        await client.put(f"{url}/{x_id}", headers=ben.headers, json={"content": "x"})
        reply = {"content": "r", "reply_to_id": x_id}
        await client.put(f"{url}/{r_id}", headers=ben.headers, json=reply)
        lower, upper = sorted([UUID(x_id), UUID(r_id)])
        edited = await no_deadlock_with(
            settings,
            [("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", lower)],
            ("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", upper),
            client.patch(f"{url}/{r_id}", headers=ben.headers, json={"content": "r!"}),
        )
        assert edited.status_code == 200, (target_first, edited.text)


async def test_an_id_taken_in_another_conversation_is_409(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    group = await factories.group(client, ann, ben)
    mid = str(uuid.uuid4())
    await client.put(
        f"/api/channels/{dm}/messages/{mid}", headers=ann.headers, json={"content": "a"}
    )
    elsewhere = await client.put(
        f"/api/channels/{group['id']}/messages/{mid}",
        headers=ann.headers,
        json={"content": "a"},
    )
    assert elsewhere.status_code == 409 and elsewhere.json()["code"] == "MESSAGE_ID_CONFLICT"
    by_other = await client.put(
        f"/api/channels/{dm}/messages/{mid}", headers=ben.headers, json={"content": "a"}
    )
    assert by_other.status_code == 409 and by_other.json()["code"] == "MESSAGE_ID_CONFLICT"


async def test_post_with_a_nonce_is_idempotent(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    first = await client.post(url, headers=ann.headers, json={"content": "hi", "nonce": "n-1"})
    again = await client.post(url, headers=ann.headers, json={"content": "hi", "nonce": "n-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["nonce"] == "n-1"
    theirs = await client.post(url, headers=ben.headers, json={"content": "hi", "nonce": "n-1"})
    assert theirs.status_code == 201  # nonces are per author
    assert len(await created_events(conn, dm)) == 2


async def test_concurrent_sends_get_gap_free_sequence_numbers(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    import asyncio

    ann, _, dm = await pair(client, make_user)
    fast = await app_with(rate_messages_user="1000/60")
    responses = await asyncio.gather(
        *(
            fast.post(f"/api/channels/{dm}/messages", headers=ann.headers, json={"content": str(i)})
            for i in range(60)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 61))


async def test_history_pages_newest_first_and_after_oldest_first(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    ann, _, dm = await pair(client, make_user)
    fast = await app_with(rate_messages_user="1000/60")
    for i in range(1, 121):
        await factories.say(fast, ann, dm, f"m{i}")
    url = f"/api/channels/{dm}/messages"
    first = await client.get(url, headers=ann.headers)
    newest = first.json()
    assert [m["seq"] for m in newest] == list(range(120, 70, -1))  # 50 by default
    assert first.headers["x-has-more"] == "true"
    assert first.headers["link"] == f'<{url}?before=71>; rel="next"'
    following = await client.get(first.headers["link"][1:].split(">")[0], headers=ann.headers)
    assert [m["seq"] for m in following.json()] == list(range(70, 20, -1))
    older = await client.get(url, params={"before": 71, "limit": 70}, headers=ann.headers)
    assert [m["seq"] for m in older.json()] == list(range(70, 0, -1))
    assert older.headers["x-has-more"] == "false" and "link" not in older.headers
    forward = await client.get(url, params={"after": 100, "limit": 10}, headers=ann.headers)
    assert forward.headers["link"] == f'<{url}?limit=10&after=110>; rel="next"'
    forward = (await client.get(url, params={"after": 100}, headers=ann.headers)).json()
    assert [m["seq"] for m in forward] == list(range(101, 121))
    assert forward[0]["content"] == "m101" and forward[0]["author"]["username"] == "ann"
    for params, field in (({"limit": 0}, "limit"), ({"limit": 101}, "limit")):
        bad = await client.get(url, params=params, headers=ann.headers)
        assert bad.status_code == 400 and bad.json()["field"] == field
    both = await client.get(url, params={"before": 5, "after": 1}, headers=ann.headers)
    assert both.status_code == 400 and both.json()["code"] == "INVALID_PAGE"


async def test_history_around_a_message_pages_both_ways(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    """`around=<seq>` (jump to a message, as Discord's `around`): the message and older
    ones fill `limit - limit // 2` places, newer ones `limit // 2`, newest first; the
    links page on older (`next`) and newer (`prev`)."""
    ann, ben, dm = await pair(client, make_user)
    fast = await app_with(rate_messages_user="1000/60")
    for i in range(1, 31):
        await factories.say(fast, ann, dm, f"m{i}")
    url = f"/api/channels/{dm}/messages"
    mid = await client.get(url, params={"around": 15, "limit": 10}, headers=ben.headers)
    assert mid.status_code == 200
    assert [m["seq"] for m in mid.json()] == list(range(20, 10, -1))
    assert mid.headers["x-has-more"] == "true"
    assert mid.headers["link"] == (
        f'<{url}?limit=10&before=11>; rel="next", <{url}?limit=10&after=20>; rel="prev"'
    )
    odd = await client.get(url, params={"around": 15, "limit": 5}, headers=ben.headers)
    assert [m["seq"] for m in odd.json()] == [17, 16, 15, 14, 13]
    one = await client.get(url, params={"around": 15, "limit": 1}, headers=ben.headers)
    assert [m["seq"] for m in one.json()] == [15]
    # Nothing at or before it, and no place for newer ones: the link goes on from there.
    none = await client.get(url, params={"around": 0, "limit": 1}, headers=ben.headers)
    assert none.json() == [] and none.headers["link"] == f'<{url}?limit=1&after=0>; rel="prev"'
    start = await client.get(url, params={"around": 2, "limit": 10}, headers=ben.headers)
    assert [m["seq"] for m in start.json()] == [7, 6, 5, 4, 3, 2, 1]
    assert start.headers["x-has-more"] == "false"
    assert start.headers["link"] == f'<{url}?limit=10&after=7>; rel="prev"'
    end = await client.get(url, params={"around": 29}, headers=ben.headers)
    assert [m["seq"] for m in end.json()] == list(range(30, 4, -1))
    assert end.headers["link"] == f'<{url}?before=5>; rel="next"'
    past = await client.get(url, params={"around": 10**6, "limit": 4}, headers=ben.headers)
    assert [m["seq"] for m in past.json()] == [30, 29]  # (no place is taken from the other side)
    for params in ({"around": 3, "before": 5}, {"around": 3, "after": 1}):
        bad = await client.get(url, params=params, headers=ben.headers)
        assert bad.status_code == 400 and bad.json()["code"] == "INVALID_PAGE"
    negative = await client.get(url, params={"around": -1}, headers=ben.headers)
    assert negative.status_code == 400 and negative.json()["field"] == "around"
    stranger = await make_user("cyd")
    hidden = await client.get(url, params={"around": 15}, headers=stranger.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_size_limit_and_empty_messages(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    exact = await client.post(url, headers=ann.headers, json={"content": "x" * 4000})
    assert exact.status_code == 201
    over = await client.post(url, headers=ann.headers, json={"content": "x" * 4001})
    assert over.status_code == 400
    assert (over.json()["code"], over.json()["field"]) == ("MESSAGE_TOO_LONG", "content")
    empty = await client.post(url, headers=ann.headers, json={"content": "   "})
    assert empty.status_code == 400 and empty.json()["code"] == "EMPTY_MESSAGE"


async def test_edits_keep_the_earlier_versions(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "v1")
    url = f"/api/channels/{dm}/messages/{message['id']}"
    for text in ("v2", "v3"):
        edited = await client.patch(url, headers=ann.headers, json={"content": text})
        assert edited.status_code == 200 and edited.json()["content"] == text
        assert edited.json()["edited_at"] is not None
    edits = (await client.get(f"{url}/edits", headers=ben.headers)).json()
    assert [e["content"] for e in edits] == ["v1", "v2"]
    assert (await client.get(url, headers=ben.headers)).json()["content"] == "v3"
    not_mine = await client.patch(url, headers=ben.headers, json={"content": "hacked"})
    assert not_mine.status_code == 403 and not_mine.json()["code"] == "NOT_MESSAGE_AUTHOR"
    types = [t for t, _ in await factories.events_of(conn, "channel", UUID(dm))]
    assert types == ["message.created", "message.updated", "message.updated"]


async def test_soft_delete_leaves_a_tombstone_without_content(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "secret")
    await factories.say(client, ann, dm, "after")
    url = f"/api/channels/{dm}/messages/{message['id']}"
    await client.patch(url, headers=ann.headers, json={"content": "secret v2"})
    await client.put(f"{url}/reactions/👍/@me", headers=ben.headers)
    assert (await client.delete(url, headers=ben.headers)).status_code == 403
    assert (await client.delete(url, headers=ann.headers)).status_code == 204
    tomb = (await client.get(url, headers=ben.headers)).json()
    assert tomb["deleted"] is True and tomb["content"] == "" and tomb["reactions"] == []
    assert tomb["seq"] == 1 and tomb["author"]["username"] == "ann"
    assert (await client.get(f"{url}/edits", headers=ben.headers)).json() == []
    history = (await client.get(f"/api/channels/{dm}/messages", headers=ben.headers)).json()
    assert [(m["seq"], m["deleted"]) for m in history] == [(2, False), (1, True)]
    assert "secret" not in str(await conn.fetch("SELECT content FROM messages"))
    assert "secret" not in str(await conn.fetch("SELECT content FROM message_edits"))
    assert (await client.delete(url, headers=ann.headers)).status_code == 204  # again: no-op
    types = [t for t, _ in await factories.events_of(conn, "channel", UUID(dm))]
    assert types.count("message.deleted") == 1
    edit = await client.patch(url, headers=ann.headers, json={"content": "back"})
    assert edit.status_code == 404 and edit.json()["code"] == "MESSAGE_NOT_FOUND"


async def test_replies_must_point_into_the_same_conversation(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    group = await factories.group(client, ann, ben)
    original = await factories.say(client, ann, dm, "question?")
    reply = await factories.say(client, ben, dm, "answer", reply_to_id=original["id"])
    assert reply["reply_to_id"] == original["id"]
    elsewhere = await factories.say(client, ann, group["id"], "other")
    bad = await client.post(
        f"/api/channels/{dm}/messages",
        headers=ben.headers,
        json={"content": "x", "reply_to_id": elsewhere["id"]},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_REPLY"
    await client.delete(f"/api/channels/{dm}/messages/{original['id']}", headers=ann.headers)
    to_deleted = await client.post(
        f"/api/channels/{dm}/messages",
        headers=ben.headers,
        json={"content": "x", "reply_to_id": original["id"]},
    )
    assert to_deleted.status_code == 400 and to_deleted.json()["code"] == "INVALID_REPLY"


async def test_mentions_keep_only_participants(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    eve = await make_user("eve")
    message = await factories.say(
        client, ann, dm, f"hi <@{ben.id}> and <@{eve.id}> <@{ben.id}> <@nope>"
    )
    assert message["mentions"] == [str(ben.id)]
    edited = await client.patch(
        f"/api/channels/{dm}/messages/{message['id']}",
        headers=ann.headers,
        json={"content": f"<@{ann.id}>"},
    )
    assert edited.json()["mentions"] == [str(ann.id)]


async def test_reactions_are_counted_with_mine_marked(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "react to me")
    url = f"/api/channels/{dm}/messages/{message['id']}"
    for who, emoji in ((ann, "🎉"), (ben, "🎉"), (ben, "👍"), (ben, "👍")):
        assert (
            await client.put(f"{url}/reactions/{emoji}/@me", headers=who.headers)
        ).status_code == 204
    seen = (await client.get(url, headers=ann.headers)).json()["reactions"]
    assert seen == [
        {"emoji": "🎉", "count": 2, "me": True},
        {"emoji": "👍", "count": 1, "me": False},
    ]
    await client.delete(f"{url}/reactions/🎉/@me", headers=ann.headers)
    seen = (await client.get(url, headers=ann.headers)).json()["reactions"]
    assert seen[0] == {"emoji": "🎉", "count": 1, "me": False}
    bad = await client.put(f"{url}/reactions/a%20b/@me", headers=ann.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_EMOJI"


async def test_edit_history_and_reactions_are_bounded(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """An author editing forever, or reacting with ever new emoji, grew what every read
    of the message returns without bound."""
    ann, ben, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "v0")
    url = f"/api/channels/{dm}/messages/{message['id']}"
    for n in range(1, MAX_EDITS + 4):
        edited = await client.patch(url, headers=ann.headers, json={"content": f"v{n}"})
        assert edited.status_code == 200, edited.text
    edits = (await client.get(f"{url}/edits", headers=ben.headers)).json()
    assert [e["content"] for e in edits] == [f"v{n}" for n in range(3, MAX_EDITS + 3)]
    stored = await conn.fetchval("SELECT count(*) FROM message_edits")
    assert stored == MAX_EDITS
    emoji = [f"e{n}" for n in range(MAX_REACTION_EMOJI)]
    for e in emoji:
        added = await client.put(f"{url}/reactions/{e}/@me", headers=ann.headers)
        assert added.status_code == 204, added.text
    one_more = await client.put(f"{url}/reactions/extra/@me", headers=ben.headers)
    assert one_more.status_code == 400 and one_more.json()["code"] == "TOO_MANY_REACTIONS"
    same = await client.put(f"{url}/reactions/{emoji[0]}/@me", headers=ben.headers)
    assert same.status_code == 204  # one already there always works
    assert (await client.delete(f"{url}/reactions/{emoji[1]}/@me", headers=ann.headers)).is_success
    now = await client.put(f"{url}/reactions/extra/@me", headers=ben.headers)
    assert now.status_code == 204, now.text
    seen = (await client.get(url, headers=ann.headers)).json()["reactions"]
    assert len(seen) == MAX_REACTION_EMOJI


async def test_read_receipts_are_visible_to_participants(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, dm = await pair(client, make_user)
    for text in ("a", "b", "c"):
        await factories.say(client, ann, dm, text)
    assert (
        await client.put(f"/api/channels/{dm}/ack", headers=ben.headers, json={"seq": 3})
    ).status_code == 200
    receipts = (await client.get(f"/api/channels/{dm}/read-states", headers=ann.headers)).json()
    # Ann's own sends moved her read position to her last message.
    assert {r["user_id"]: r["last_read_seq"] for r in receipts} == {str(ben.id): 3, str(ann.id): 3}
    beyond = await client.put(f"/api/channels/{dm}/ack", headers=ben.headers, json={"seq": 4})
    assert beyond.status_code == 400 and beyond.json()["code"] == "INVALID_SEQ"
    events = await factories.events_of(conn, "channel", UUID(dm))
    assert events[-1] == (
        "read_state.updated",
        {"channel_id": dm, "user_id": str(ben.id), "last_read_seq": 3},
    )


def _receipts(events: list[tuple[str, dict[str, Any]]], who: factories.TestUser) -> list[int]:
    return [
        int(d["last_read_seq"])
        for t, d in events
        if t == "read_state.updated" and d["user_id"] == str(who.id)
    ]


async def _ack(client: httpx.AsyncClient, who: factories.TestUser, channel: str, seq: int) -> Any:
    answer = await client.put(
        f"/api/channels/{channel}/ack", headers=who.headers, json={"seq": seq}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_alternating_acks_tell_the_others_once_per_new_high(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Acks 1, 2, 1, 2 ... each told every participant (up to 25, at up to 600 acks a
    minute), the moves back as false news. Now the others hear of a position only
    above the highest they heard of; ann's own connections hear of every move."""
    ann, ben, group = await pair(client, make_user, "group")
    for text in ("a", "b", "c"):
        await factories.say(client, ben, group, text)
    for seq in (1, 2, 1, 2, 1, 2, 3, 1, 3):
        await _ack(client, ann, group, seq)
    told = _receipts(await factories.events_of(conn, "channel", UUID(group)), ann)
    assert told == [1, 2, 3]
    own = _receipts(await factories.events_of(conn, "user", ann.id), ann)
    assert own == [1, 2, 1, 2, 1, 3]


async def test_marking_unread_tells_only_ones_own_connections(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, dm = await pair(client, make_user)
    for text in ("a", "b", "c"):
        await factories.say(client, ben, dm, text)
    await _ack(client, ann, dm, 3)
    before = await factories.events_of(conn, "channel", UUID(dm))
    assert (await _ack(client, ann, dm, 1))["last_read_seq"] == 1
    assert await factories.events_of(conn, "channel", UUID(dm)) == before
    assert (await factories.events_of(conn, "user", ann.id))[-1] == (
        "read_state.updated",
        {"channel_id": dm, "user_id": str(ann.id), "last_read_seq": 1},
    )


async def test_read_states_after_marking_unread_show_the_receipt_at_its_high(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """The others are shown what they were told (ann at 3, when she read it); ann
    herself her own position (1, as her own connections were told)."""
    ann, ben, dm = await pair(client, make_user)
    for text in ("a", "b", "c"):
        await factories.say(client, ben, dm, text)
    read = await _ack(client, ann, dm, 3)
    await _ack(client, ann, dm, 1)
    await _ack(client, ann, dm, 2)
    url = f"/api/channels/{dm}/read-states"
    theirs = {r["user_id"]: r for r in (await client.get(url, headers=ben.headers)).json()}
    assert theirs[str(ann.id)] == read
    mine = {r["user_id"]: r for r in (await client.get(url, headers=ann.headers)).json()}
    assert mine[str(ann.id)]["last_read_seq"] == 2
    assert mine[str(ann.id)]["updated_at"] > read["updated_at"]


async def test_a_send_raises_the_receipt_so_reading_up_to_it_again_tells_nobody(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A send moves its author's read position (and receipt: the message tells the
    others) without an ack; a mark-unread after it, and a read again up to it, are
    ann's alone, and the others are shown her at her message."""
    ann, ben, dm = await pair(client, make_user)
    for text in ("a", "b"):
        await factories.say(client, ben, dm, text)
    await _ack(client, ann, dm, 1)
    await factories.say(client, ann, dm, "mine")
    shown = (await client.get(f"/api/channels/{dm}/read-states", headers=ben.headers)).json()
    sent = next(r for r in shown if r["user_id"] == str(ann.id))
    assert sent["last_read_seq"] == 3
    for seq in (2, 3, 1, 2):
        await _ack(client, ann, dm, seq)
    assert _receipts(await factories.events_of(conn, "channel", UUID(dm)), ann) == [1]
    again = (await client.get(f"/api/channels/{dm}/read-states", headers=ben.headers)).json()
    assert next(r for r in again if r["user_id"] == str(ann.id)) == sent


async def test_a_server_channel_ack_tells_its_reader_alone_and_shows_their_own_position(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    channel = (await factories.server_channel(client, srv, ann, "talk"))["id"]
    for text in ("a", "b"):
        await factories.say(client, ann, channel, text)
    for seq in (2, 1):
        await _ack(client, ben, channel, seq)
    assert _receipts(await factories.events_of(conn, "channel", UUID(channel)), ben) == []
    assert _receipts(await factories.events_of(conn, "user", ben.id), ben) == [2, 1]
    shown = (await client.get(f"/api/channels/{channel}/read-states", headers=ben.headers)).json()
    assert [(r["user_id"], r["last_read_seq"]) for r in shown] == [(str(ben.id), 1)]


async def test_typing_is_not_stored(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, _, dm = await pair(client, make_user)
    assert (await client.post(f"/api/channels/{dm}/typing", headers=ann.headers)).status_code == 204
    assert [t for t, _ in await factories.events_of(conn, "channel", UUID(dm))] == []


async def test_sends_are_rate_limited_per_user_and_conversation(
    app_with: AppWith, make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    ann, ben, dm = await pair(client, make_user)
    limited = await app_with(rate_messages_user="3/300")
    codes = [
        (
            await limited.post(
                f"/api/channels/{dm}/messages", headers=ann.headers, json={"content": str(i)}
            )
        ).status_code
        for i in range(4)
    ]
    assert codes == [201, 201, 201, 429]
    last = await limited.post(
        f"/api/channels/{dm}/messages", headers=ann.headers, json={"content": "x"}
    )
    assert last.headers["x-ratelimit-bucket"] == "messages.send"
    theirs = await limited.post(
        f"/api/channels/{dm}/messages", headers=ben.headers, json={"content": "x"}
    )
    assert theirs.status_code == 201


async def test_idempotent_repeats_do_not_consume_the_send_limit(
    app_with: AppWith, make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    ann, _, dm = await pair(client, make_user)
    limited = await app_with(rate_messages_user="2/300")
    url = f"/api/channels/{dm}/messages"
    mid = str(uuid.uuid4())
    first = await limited.put(f"{url}/{mid}", headers=ann.headers, json={"content": "once"})
    assert first.status_code == 201 and first.headers["x-ratelimit-remaining"] == "1"
    for _ in range(3):  # retries of the same send: answered, never counted
        again = await limited.put(f"{url}/{mid}", headers=ann.headers, json={"content": "once"})
        assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == "1"
    nonce = {"content": "n", "nonce": "n-1"}
    assert (await limited.post(url, headers=ann.headers, json=nonce)).status_code == 201
    repeat = await limited.post(url, headers=ann.headers, json=nonce)
    assert repeat.status_code == 200 and repeat.headers["x-ratelimit-remaining"] == "0"
    over = await limited.post(url, headers=ann.headers, json={"content": "third"})
    assert over.status_code == 429  # the limit is two new messages, repeats aside
    still = await limited.put(f"{url}/{mid}", headers=ann.headers, json={"content": "once"})
    assert still.status_code == 200  # a repeat is answered even at the limit


async def test_a_nonce_reused_with_another_body_is_409(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    first = await client.post(url, headers=ann.headers, json={"content": "hi", "nonce": "n"})
    assert first.status_code == 201
    other = await client.post(url, headers=ann.headers, json={"content": "bye", "nonce": "n"})
    assert other.status_code == 409 and other.json()["code"] == "NONCE_CONFLICT"
    assert other.json()["field"] == "nonce"
    reply = await client.post(
        url,
        headers=ann.headers,
        json={"content": "hi", "nonce": "n", "reply_to_id": first.json()["id"]},
    )
    assert reply.status_code == 409 and reply.json()["code"] == "NONCE_CONFLICT"
    assert len(await created_events(conn, dm)) == 1


async def test_a_put_whose_nonce_names_another_message_is_409(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith, conn: asyncpg.Connection
) -> None:
    """A PUT names its message: a nonce of yours already on another message in the
    channel is NONCE_CONFLICT, where it was answered 200 with that other message (its
    id not the URL's, which then stayed 404), whether the other was stored before or is
    in the same batch."""
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    first = await client.post(url, headers=ann.headers, json={"content": "hi", "nonce": "n"})
    assert first.status_code == 201
    mine = uuid.uuid4()
    put = await client.put(
        f"{url}/{mine}", headers=ann.headers, json={"content": "hi", "nonce": "n"}
    )
    assert put.status_code == 409 and put.json()["code"] == "NONCE_CONFLICT", put.text
    assert (await client.get(f"{url}/{mine}", headers=ann.headers)).status_code == 404
    again = await client.put(f"{url}/{mine}", headers=ann.headers, json={"content": "hi"})
    assert again.status_code == 201  # the id is free: nothing was stored under it
    repeat = await client.put(f"{url}/{mine}", headers=ann.headers, json={"content": "hi"})
    assert repeat.status_code == 200 and repeat.json()["id"] == str(mine)
    fast = await app_with(rate_messages_user="1000/60")
    ids = [uuid.uuid4() for _ in range(6)]
    answers = await asyncio.gather(
        *(
            fast.put(f"{url}/{i}", headers=ann.headers, json={"content": "x", "nonce": "dc"})
            for i in ids
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5, [a.text for a in answers]
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE nonce = 'dc'") == 1


async def test_a_reply_carries_a_preview_of_what_it_answers(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, dm = await pair(client, make_user)
    original = await factories.say(client, ann, dm, "x" * 150)
    reply = await factories.say(client, ben, dm, "yes", reply_to_id=original["id"])
    preview = reply["reply_to"]
    assert preview["id"] == original["id"] and preview["content"] == "x" * 100
    assert preview["author"]["username"] == "ann" and preview["deleted"] is False
    assert (await created_events(conn, dm))[-1]["reply_to"] == preview  # the event too
    url = f"/api/channels/{dm}/messages"
    history = (await client.get(url, headers=ann.headers)).json()
    assert history[0]["reply_to"] == preview and history[1]["reply_to"] is None
    assert (await client.delete(f"{url}/{original['id']}", headers=ann.headers)).status_code == 204
    after = (await client.get(f"{url}/{reply['id']}", headers=ben.headers)).json()["reply_to"]
    assert after["deleted"] is True and after["content"] == "" and after["id"] == original["id"]


async def test_sent_messages_count_in_usage(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    ann, _, dm = await pair(client, make_user)
    for i in range(3):
        await factories.say(client, ann, dm, str(i))
    usage = (await client.get("/api/users/@me/usage", headers=ann.headers)).json()
    assert usage[0]["messages_sent"] == 3


async def test_concurrent_posts_with_one_nonce_store_one_message(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith, conn: asyncpg.Connection
) -> None:
    import asyncio

    ann, _, dm = await pair(client, make_user)
    fast = await app_with(rate_messages_user="1000/60")
    others = [
        fast.post(
            f"/api/channels/{dm}/messages", headers=ann.headers, json={"content": f"other {i}"}
        )
        for i in range(5)
    ]
    same = [
        fast.post(
            f"/api/channels/{dm}/messages",
            headers=ann.headers,
            json={"content": "hi", "nonce": "double-click"},
        )
        for _ in range(6)
    ]
    responses = await asyncio.gather(*same, *others)
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses[:6]}) == 1
    assert sorted(r.status_code for r in responses[:6]) == [200] * 5 + [201]
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE nonce = 'double-click'") == 1
    assert await conn.fetchval("SELECT count(*) FROM messages") == 6


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/api/auth/login", {"login": "\ud800", "password": "x"}, "VALIDATION_ERROR"),
        (
            "POST",
            "/api/auth/register",
            {"username": "sur", "email": "s@example.com", "password": "long enough \ud800"},
            "VALIDATION_ERROR",
        ),
        ("PATCH", "/api/users/@me", {"display_name": "\udfff"}, "VALIDATION_ERROR"),
        # the send path parses with pydantic's own JSON reader, which refuses the surrogate
        (
            "POST",
            "/api/channels/{dm}/messages",
            {"content": "bad \ud800 text"},
            "MALFORMED_JSON",
        ),
        (
            "GET",
            "/api/channels/{dm}/messages?before=99999999999999999999",
            None,
            "VALIDATION_ERROR",
        ),
        (
            "PUT",
            "/api/channels/{dm}/messages/{mid}/reactions/a%00b/@me",
            None,
            "INVALID_EMOJI",
        ),
        (  # a lone surrogate, which is not UTF-8
            "PUT",
            "/api/channels/{dm}/messages/{mid}/reactions/%ED%A0%80/@me",
            None,
            "INVALID_EMOJI",
        ),
    ],
)
async def test_values_nothing_can_store_are_400(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    method: str,
    path: str,
    body: object,
    code: str,
) -> None:
    import json

    ann, _, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "hello")
    url = path.format(dm=dm, mid=message["id"])
    raw = json.dumps(body).encode() if body is not None else None  # keeps the lone surrogate
    response = await client.request(
        method, url, headers={**ann.headers, "content-type": "application/json"}, content=raw
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


async def test_deleting_a_message_empties_it_in_the_event_log(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, _, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "regrettable")
    await client.patch(
        f"/api/channels/{dm}/messages/{message['id']}",
        headers=ann.headers,
        json={"content": "regrettable, edited"},
    )
    await factories.say(client, ann, dm, "kept")
    await client.delete(f"/api/channels/{dm}/messages/{message['id']}", headers=ann.headers)
    events = await factories.events_of(conn, "channel", UUID(dm))
    assert "regrettable" not in str(events)
    created = [d for t, d in events if t == "message.created" and d["id"] == message["id"]]
    assert created[0]["content"] == "" and created[0]["deleted"] is True
    tomb = (
        await client.get(f"/api/channels/{dm}/messages/{message['id']}", headers=ann.headers)
    ).json()
    assert created[0]["deleted_at"] == tomb["deleted_at"] is not None  # as history shows it
    assert any(d.get("content") == "kept" for _, d in events)


async def test_deleting_a_message_empties_its_reactions_in_the_event_log(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Was: a resume replayed a deleted message's reactions, whose emoji is text of up to
    64 characters, in its `reaction.added`/`reaction.removed` events and in the
    `reactions` (and `pinned`) of its `message.updated`, though the README says its
    reactions leave the event log with its text."""
    ann, _, dm = await pair(client, make_user)
    message = await factories.say(client, ann, dm, "regrettable")
    url = f"/api/channels/{dm}/messages/{message['id']}"
    for emoji in ("leakedword", "takenback"):
        added = await client.put(f"{url}/reactions/{emoji}/@me", headers=ann.headers)
        assert added.status_code == 204, added.text
    await client.delete(f"{url}/reactions/takenback/@me", headers=ann.headers)
    await client.put(f"/api/channels/{dm}/pins/{message['id']}", headers=ann.headers)
    await client.patch(url, headers=ann.headers, json={"content": "edited"})
    kept = await factories.say(client, ann, dm, "kept")
    await client.put(
        f"/api/channels/{dm}/messages/{kept['id']}/reactions/keptword/@me", headers=ann.headers
    )
    assert "leakedword" in str(await factories.events_of(conn, "channel", UUID(dm)))
    await client.delete(url, headers=ann.headers)
    events = await factories.events_of(conn, "channel", UUID(dm))
    assert "leakedword" not in str(events) and "takenback" not in str(events)
    reacted = [
        d for t, d in events if t.startswith("reaction.") and d["message_id"] == message["id"]
    ]
    assert len(reacted) == 3 and {d["emoji"] for d in reacted} == {""}  # (their places stay)
    tomb = (await client.get(url, headers=ann.headers)).json()
    for t, d in events:
        if t in ("message.created", "message.updated") and d["id"] == message["id"]:
            assert (
                (d["reactions"], d["pinned"]) == (tomb["reactions"], tomb["pinned"]) == ([], False)
            )
    assert any(d.get("emoji") == "keptword" for _, d in events)  # another message's stay


async def test_repeated_parents_headers_count_together_against_the_limit(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, _, dm = await pair(client, make_user)
    versions = [f'"{uuid.uuid4()}"' for _ in range(10)]
    headers = [
        *ann.headers.items(),
        ("Subscribe", "true"),
        ("Parents", ", ".join(versions[:5])),  # each header alone is within the 8
        ("Parents", ", ".join(versions[5:])),
    ]
    response = await client.get(f"/api/channels/{dm}/messages", headers=headers)
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARENTS"


async def test_a_body_that_says_it_is_not_json_is_415_everywhere(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: a send took any Content-Type as JSON (text/plain, image/png), every other
    route answered the same body 400 "Input should be a valid dictionary", and the 415
    the API document lists was never sent."""
    ann, _, dm = await pair(client, make_user)
    body = b'{"content": "hi"}'
    for kind in ("text/plain;charset=UTF-8", "image/png", "application/x-www-form-urlencoded"):
        headers = {**ann.headers, "content-type": kind}
        for method, url, raw in (
            ("PUT", f"/api/channels/{dm}/messages/{uuid.uuid4()}", body),
            ("POST", f"/api/channels/{dm}/messages", body),
            ("POST", "/api/auth/login", b'{"login": "ann", "password": "x"}'),
            ("PATCH", "/api/users/@me", b'{"display_name": "Ann"}'),
        ):
            answer = await client.request(method, url, headers=headers, content=raw)
            assert answer.status_code == 415, (kind, url, answer.text)
            assert answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    bare = {k: v for k, v in ann.headers.items() if k.lower() != "content-type"}
    for kind in (None, "application/json; charset=utf-8", "application/merge-patch+json"):
        headers = bare if kind is None else {**bare, "content-type": kind}
        url = f"/api/channels/{dm}/messages/{uuid.uuid4()}"
        sent = await client.put(url, headers=headers, content=body)
        assert sent.status_code == 201, (kind, sent.text)


async def test_a_body_with_a_content_coding_is_415(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A hostile client's find: Content-Encoding was not looked at, so plain JSON said to
    be gzipped was stored as it came, and gzipped JSON was MALFORMED_JSON."""
    ann, _, dm = await pair(client, make_user)
    plain = b'{"content": "hi"}'
    for coding, raw in (("gzip", plain), ("gzip", gzip.compress(plain)), ("identity, br", plain)):
        url = f"/api/channels/{dm}/messages/{uuid.uuid4()}"
        headers = {**ann.headers, "content-encoding": coding}
        answer = await client.put(url, headers=headers, content=raw)
        assert answer.status_code == 415, (coding, answer.text)
        assert answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert (await client.get(url, headers=ann.headers)).status_code == 404  # (nothing)
    for coding in ("identity", ""):
        url = f"/api/channels/{dm}/messages/{uuid.uuid4()}"
        headers = {**ann.headers, "content-encoding": coding}
        assert (await client.put(url, headers=headers, content=plain)).status_code == 201
    me = await client.get("/api/users/@me", headers={**ann.headers, "content-encoding": "gzip"})
    assert me.status_code == 200  # (no body: nothing is coded)


async def test_a_content_type_without_a_media_type_is_415_and_none_is_json_everywhere(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: "; charset=utf-8" or ";;;" was JSON to a send and 400 VALIDATION_ERROR "Input
    should be a valid dictionary" to every other route (FastAPI reads neither as JSON),
    and so was a body with no Content-Type (FastAPI's strict default)."""
    ann, _, dm = await pair(client, make_user, "group")
    bare = {k: v for k, v in ann.headers.items() if k.lower() != "content-type"}

    def attempts() -> list[tuple[str, str, bytes]]:
        return [
            ("PUT", f"/api/channels/{dm}/messages/{uuid.uuid4()}", b'{"content": "hi"}'),
            ("POST", f"/api/channels/{dm}/messages", b'{"content": "hi"}'),
            ("PATCH", "/api/users/@me", b'{"display_name": "Ann"}'),
            ("PATCH", f"/api/conversations/{dm}", b'{"name": "crew"}'),
        ]

    for kind in ("; charset=utf-8", ";;;", ";", "charset=utf-8"):
        for method, url, raw in attempts():
            answer = await client.request(
                method, url, headers={**bare, "content-type": kind}, content=raw
            )
            assert answer.status_code == 415, (kind, url, answer.text)
            assert answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    for kind in (None, ""):
        headers = bare if kind is None else {**bare, "content-type": kind}
        for method, url, raw in attempts():
            answer = await client.request(method, url, headers=headers, content=raw)
            assert answer.status_code < 300, (kind, url, answer.text)


async def test_a_moderator_removes_someone_elses_reaction(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Was: a reaction could be taken away only by whoever gave it (`.../@me`): a raider's
    slur as a reaction stayed on a message until its author deleted the message itself,
    where Discord's moderators remove it (MANAGE_MESSAGES)."""
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await factories.community(client, ann, mod, ben)
    await factories.role(client, srv, ann, "mods", int(P.MANAGE_MESSAGES), mod)
    said = await factories.say(client, ann, srv.general, "welcome")
    url = f"/api/channels/{srv.general}/messages/{said['id']}/reactions"
    for who, emoji in ((ben, "🤬"), (ann, "🤬"), (ben, "👍")):
        assert (await client.put(f"{url}/{emoji}/@me", headers=who.headers)).status_code == 204
    # Without MANAGE_MESSAGES: 403, nothing removed.
    refused = await client.delete(f"{url}/🤬/{ann.id}", headers=ben.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "MISSING_PERMISSIONS")
    gone = await client.delete(f"{url}/🤬/{ben.id}", headers=mod.headers)
    assert gone.status_code == 204
    # Only ben's, only that emoji; a spelling with the variation selector is the same one.
    again = await client.delete(f"{url}/🤬\ufe0f/{ben.id}", headers=mod.headers)
    assert again.status_code == 204
    who = await client.get(f"{url}/🤬", headers=ann.headers)
    assert [u["id"] for u in who.json()] == [str(ann.id)]
    thumbs = await client.get(f"{url}/👍", headers=ann.headers)
    assert [u["id"] for u in thumbs.json()] == [str(ben.id)]
    events = await factories.events_of(conn, "channel", UUID(srv.general))
    removed = [d for t, d in events if t == "reaction.removed"]
    assert removed == [
        {
            "message_id": said["id"],
            "channel_id": srv.general,
            "user_id": str(ben.id),
            "emoji": "🤬",
        }
    ]
    missing = await client.delete(
        f"{url}/🤬/{ben.id}".replace(said["id"], str(uuid.uuid4())), headers=mod.headers
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "MESSAGE_NOT_FOUND")
