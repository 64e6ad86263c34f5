"""Races, attacked from outside: bursts of requests sent at once by ordinary accounts
against the documented count limits and invariants; afterwards the database must hold
no more than the limit, no half-done write, and every answer must be a clear 2xx or
4xx with `{code, message}`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from tests import factories
from tests.factories import PASSWORD, AppWith, MakeUser, TestUser, lock_waiters

ROUNDS = 3


async def gated(
    pool: asyncpg.Pool, hold: str, row: object, requests: Sequence[Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Hold the row `hold` locks, start `requests`, wait until each waits on a lock
    (pg_stat_activity), then let them all go at once: they race from one start, and a
    limit counted before its lock shows (without the lock they never wait, and the
    wait times out). Their answers, checked as `burst` checks them."""
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(hold, row)
        tasks = [asyncio.ensure_future(r) for r in requests]
        await lock_waiters(pool, at_least=len(tasks))
    return await burst(tasks)


async def burst(requests: Sequence[Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """All at once; every answer a 2xx or a 4xx with a code and a message."""
    answers = list(await asyncio.gather(*requests))
    for a in answers:
        assert a.status_code < 500, a.text
        if a.is_error:
            body = a.json()
            assert set(body) >= {"code", "message"}, a.text
    return answers


def ok(answers: Sequence[httpx.Response]) -> int:
    return sum(1 for a in answers if a.is_success)


async def test_invite_max_uses_holds_for_a_crowd(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Eight people use an invite of max_uses 3 at once, three rounds: at most three get in
    each time."""
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(8)]
    srv = await factories.community(client, ann)
    for _ in range(ROUNDS):
        made = await client.post(srv.url("/invites"), headers=ann.headers, json={"max_uses": 3})
        code = made.json()["code"]
        answers = await burst(
            [client.post(f"/api/invites/{code}", headers=p.headers) for p in people]
        )
        assert ok([a for a in answers if a.status_code == 201]) <= 3
        uses = await conn.fetchval("SELECT uses FROM invites WHERE code = $1", code)
        assert uses is None or uses <= 3
    members = await conn.fetchval(
        "SELECT count(*) FROM server_members WHERE server_id = $1", UUID(srv.id)
    )
    assert members <= 1 + 3 * ROUNDS


async def test_owner_leaving_while_transferring(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """The owner hands the server to two members at once while leaving, and they leave and
    kick: the owner is always a member."""
    ann = await make_user("ann")
    ben, cat = await make_user("ben"), await make_user("cat")
    for _ in range(ROUNDS):
        srv = await factories.community(client, ann, ben, cat)
        await burst(
            [
                client.post(
                    srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)}
                ),
                client.post(
                    srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(cat.id)}
                ),
                client.delete(srv.url("/members/@me"), headers=ann.headers),
                client.delete(srv.url(f"/members/{cat.id}"), headers=ben.headers),
                client.delete(srv.url("/members/@me"), headers=cat.headers),
                client.delete(srv.url("/members/@me"), headers=ben.headers),
            ]
        )
        owner = await conn.fetchval("SELECT owner_id FROM servers WHERE id = $1", UUID(srv.id))
        member = await conn.fetchval(
            "SELECT count(*) FROM server_members WHERE server_id = $1 AND user_id = $2",
            UUID(srv.id),
            owner,
        )
        assert member == 1


async def test_two_accepts_of_one_request(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """One request accepted three times, declined and cancelled at once: one answer
    succeeds, and a friendship exists exactly when it was accepted."""
    accepted = 0
    for r in range(ROUNDS):
        ann, ben = await make_user(f"a{r}"), await make_user(f"b{r}")
        sent = await client.post(
            "/api/users/@me/friend-requests", headers=ann.headers, json={"username": f"b{r}"}
        )
        rid = sent.json()["id"]
        url = f"/api/users/@me/friend-requests/{rid}"
        answers = await burst(
            [
                client.post(f"{url}/accept", headers=ben.headers),
                client.post(f"{url}/accept", headers=ben.headers),
                client.post(f"{url}/decline", headers=ben.headers),
                client.delete(url, headers=ann.headers),
                client.post(f"{url}/accept", headers=ben.headers),
            ]
        )
        assert ok(answers) == 1, [a.text for a in answers]
        friends = await conn.fetchval("SELECT count(*) FROM friendships")
        status = await conn.fetchval("SELECT status FROM friend_requests WHERE id = $1", UUID(rid))
        accepted += status == "accepted"
        assert friends == accepted, (status, [a.text for a in answers])


async def test_accept_racing_a_block(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """ben accepts ann's request while she blocks him: they end blocked, never friends as
    well."""
    for r in range(ROUNDS):
        ann, ben = await make_user(f"a{r}"), await make_user(f"b{r}")
        sent = await client.post(
            "/api/users/@me/friend-requests", headers=ann.headers, json={"username": f"b{r}"}
        )
        rid = sent.json()["id"]
        await burst(
            [
                client.post(f"/api/users/@me/friend-requests/{rid}/accept", headers=ben.headers),
                client.put(f"/api/users/@me/blocks/{ben.id}", headers=ann.headers),
            ]
        )
        blocked = await conn.fetchval(
            "SELECT count(*) FROM blocks WHERE blocker_id = $1 AND blocked_id = $2", ann.id, ben.id
        )
        friends = await conn.fetchval(
            "SELECT count(*) FROM friendships WHERE $1 IN (user_low, user_high)", ann.id
        )
        assert blocked == 1 and friends == 0


async def test_role_deleted_while_assigned(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A role given to six members while it is deleted: it is gone, with no member holding
    it."""
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(6)]
    srv = await factories.community(client, ann, *people)
    for r in range(ROUNDS):
        role_id = await factories.role(client, srv, ann, f"r{r}", 1)
        await burst(
            [
                client.delete(srv.url(f"/roles/{role_id}"), headers=ann.headers),
                *[
                    client.put(srv.url(f"/members/{p.id}/roles/{role_id}"), headers=ann.headers)
                    for p in people
                ],
            ]
        )
        left = await conn.fetchval("SELECT count(*) FROM roles WHERE id = $1", UUID(role_id))
        assert left == 0


async def test_channel_deleted_while_used(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A channel deleted while it is written to, pinned in, reacted in, edited in, read,
    muted and overridden: every answer is a clear one."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    for r in range(ROUNDS):
        ch = (await factories.server_channel(client, srv, ann, f"c{r}"))["id"]
        m = (await factories.say(client, ann, ch, "x"))["id"]
        base = f"/api/channels/{ch}"
        await burst(
            [
                client.delete(base, headers=ann.headers),
                client.post(f"{base}/messages", headers=ben.headers, json={"content": "y"}),
                client.put(f"{base}/pins/{m}", headers=ann.headers),
                client.put(f"{base}/messages/{m}/reactions/a/@me", headers=ben.headers),
                client.patch(f"{base}/messages/{m}", headers=ann.headers, json={"content": "z"}),
                client.put(f"{base}/ack", headers=ben.headers, json={"seq": 1}),
                client.put(
                    f"/api/users/@me/mutes/channel/{ch}", headers=ben.headers, json={"until": None}
                ),
                client.put(
                    f"{base}/overrides/member/{ben.id}",
                    headers=ann.headers,
                    json={"allow": "0", "deny": "2"},
                ),
            ]
        )


async def test_category_deleted_while_channel_moved_in(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Channels moved (synced) into a category, and one made there, while it is deleted:
    each that got in keeps a copy of its override, none is left following nothing."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    for r in range(ROUNDS * 2):
        cat = (await factories.server_channel(client, srv, ann, f"k{r}", kind="category"))["id"]
        denied = await factories.override(client, ann, cat, "role", srv.everyone_role, deny=2)
        assert denied.status_code == 200, denied.text
        chans = [
            (await factories.server_channel(client, srv, ann, f"c{r}{i}"))["id"] for i in range(4)
        ]
        answers = await burst(
            [
                client.delete(f"/api/channels/{cat}", headers=ann.headers),
                *[
                    client.patch(
                        f"/api/channels/{c}",
                        headers=ann.headers,
                        json={"parent_id": cat, "permissions_synced": True},
                    )
                    for c in chans
                ],
                client.post(
                    srv.url("/channels"),
                    headers=ann.headers,
                    json={"name": f"n{r}", "parent_id": cat},
                ),
            ]
        )
        moved = [c for c, a in zip(chans, answers[1:5], strict=True) if a.status_code == 200]
        made = [answers[5].json()["id"]] if answers[5].status_code == 201 else []
        for c in moved + made:
            row = await conn.fetchrow(
                "SELECT parent_id, permissions_synced FROM channels WHERE id = $1", UUID(c)
            )
            overrides = await conn.fetch(
                "SELECT deny FROM channel_permission_overrides WHERE channel_id = $1", UUID(c)
            )
            assert row["parent_id"] is None, (row, answers[0].text)
            assert [int(o["deny"]) for o in overrides] == [2], (
                c,
                overrides,
                row,
                [a.text for a in answers],
            )


async def test_message_edited_while_deleted(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A message edited twice while it is deleted: a deletion is never undone by an edit."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    for r in range(ROUNDS * 2):
        m = (await factories.say(client, ann, srv.general, "x"))["id"]
        url = f"/api/channels/{srv.general}/messages/{m}"
        await burst(
            [
                client.delete(url, headers=ann.headers),
                client.patch(url, headers=ann.headers, json={"content": f"e{r}"}),
                client.patch(url, headers=ann.headers, json={"content": f"f{r}"}),
            ]
        )
        row = await conn.fetchrow("SELECT content, deleted_at FROM messages WHERE id = $1", UUID(m))
        assert row is None or row["deleted_at"] is not None


async def test_ban_racing_a_join(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A user joins twice while being banned: never a banned member."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    for r in range(ROUNDS * 2):
        ben = await make_user(f"b{r}")
        await burst(
            [
                client.post(f"/api/invites/{srv.invite}", headers=ben.headers),
                client.put(srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={}),
                client.post(f"/api/invites/{srv.invite}", headers=ben.headers),
            ]
        )
        member = await conn.fetchval(
            "SELECT count(*) FROM server_members WHERE server_id = $1 AND user_id = $2",
            UUID(srv.id),
            ben.id,
        )
        assert member == 0


async def test_leave_group_while_added_and_messages(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A group's owner and member leave while someone is added, a message sent and the
    group renamed: its owner is always one of its participants."""
    for r in range(ROUNDS):
        ann, ben, cat = await make_user(f"a{r}"), await make_user(f"b{r}"), await make_user(f"c{r}")
        await factories.befriend(ann, cat)
        made = await factories.group(client, ann, ben)
        cid = made["id"]
        await burst(
            [
                client.delete(f"/api/conversations/{cid}/participants/@me", headers=ann.headers),
                client.delete(f"/api/conversations/{cid}/participants/@me", headers=ben.headers),
                client.put(f"/api/conversations/{cid}/participants/{cat.id}", headers=ann.headers),
                client.post(
                    f"/api/channels/{cid}/messages", headers=ben.headers, json={"content": "hi"}
                ),
                client.patch(f"/api/conversations/{cid}", headers=ben.headers, json={"name": "n"}),
            ]
        )
        row = await conn.fetchrow("SELECT owner_id FROM channels WHERE id = $1", UUID(cid))
        people = await conn.fetch(
            "SELECT user_id FROM conversation_participants WHERE channel_id = $1", UUID(cid)
        )
        ids = {p["user_id"] for p in people}
        if row is not None and ids:
            assert row["owner_id"] in ids, (row, ids)


async def test_kick_racing_role_and_override_changes(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A member kicked (or leaving) while given a role, an override, a nickname: nothing of
    theirs that grants is left."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    role_id = await factories.role(client, srv, ann, "r", 1)
    for r in range(ROUNDS * 2):
        ben = await make_user(f"b{r}")
        await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)
        await burst(
            [
                client.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers),
                client.put(srv.url(f"/members/{ben.id}/roles/{role_id}"), headers=ann.headers),
                client.put(
                    f"/api/channels/{srv.general}/overrides/member/{ben.id}",
                    headers=ann.headers,
                    json={"allow": "1", "deny": "0"},
                ),
                client.patch(
                    srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"nickname": "x"}
                ),
                client.delete(srv.url("/members/@me"), headers=ben.headers),
            ]
        )
        roles: Any = await conn.fetchval(
            "SELECT count(*) FROM member_roles WHERE user_id = $1", ben.id
        )
        allows = await conn.fetchval(
            "SELECT count(*) FROM channel_permission_overrides WHERE user_id = $1 AND allow <> 0",
            ben.id,
        )
        assert (roles, allows) == (0, 0)


async def test_one_message_id_or_nonce_sent_many_times_at_once_is_one_message(
    app_with: AppWith, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """One client id or nonce sent many times at once (by two people, with two bodies): one
    message, the repeats answered with it."""
    client = await app_with(rate_messages_user="1000/60")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    url = f"/api/channels/{srv.general}/messages"
    for r in range(ROUNDS):
        mid = str(uuid.uuid4())
        answers = await burst(
            [
                client.put(f"{url}/{mid}", headers=ann.headers, json={"content": "same"})
                for _ in range(4)
            ]
            + [
                client.put(f"{url}/{mid}", headers=ben.headers, json={"content": "same"})
                for _ in range(2)
            ]
            + [
                client.put(f"{url}/{mid}", headers=ann.headers, json={"content": "other"})
                for _ in range(2)
            ]
        )
        assert sorted(a.status_code for a in answers[:4]) in (
            [200, 200, 200, 201],
            [200, 200, 200, 200],
        ), [a.text for a in answers]
        nonce = f"n{r}"
        answers = await burst(
            [
                client.post(url, headers=ann.headers, json={"content": "hey", "nonce": nonce})
                for _ in range(6)
            ]
        )
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [
            a.text for a in answers
        ]
        assert len({a.json()["id"] for a in answers}) == 1
    n = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE channel_id = $1 AND content IN ('same','other','hey')",
        UUID(srv.general),
    )
    assert n == 2 * ROUNDS


SERVER_ROW = "SELECT 1 FROM servers WHERE id = $1 FOR UPDATE"


async def test_reactions_of_many_at_once_never_pass_twenty_emoji(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Six members each add a new emoji at once to a message carrying 17: three get
    in, three are TOO_MANY_REACTIONS (the message's row is the lock they count under)."""
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(6)]
    srv = await factories.community(client, ann, *people)
    msg = await factories.say(client, ann, srv.general, "m")
    url = f"/api/channels/{srv.general}/messages/{msg['id']}/reactions"
    for i in range(17):
        done = await client.put(f"{url}/e{i}/@me", headers=ann.headers)
        assert done.status_code == 204, done.text
    answers = await gated(
        pool,
        "SELECT 1 FROM messages WHERE id = $1 FOR UPDATE",
        UUID(msg["id"]),
        [client.put(f"{url}/x{i}/@me", headers=p.headers) for i, p in enumerate(people)],
    )
    assert (
        sorted(a.json()["code"] if a.is_error else "" for a in answers)
        == [""] * 3 + ["TOO_MANY_REACTIONS"] * 3
    ), [a.text for a in answers]
    n = await pool.fetchval(
        "SELECT count(DISTINCT emoji) FROM reactions WHERE message_id = $1", UUID(msg["id"])
    )
    assert n == 20


async def test_pins_of_many_messages_at_once_never_pass_fifty(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Six messages pinned at once by moderators in a channel holding 47 pins: three
    are pinned (each with its notice), three are TOO_MANY_PINS (the channel's row, as a
    sequence number takes it, is the lock they count under)."""
    client = await app_with(rate_messages_user="1000/60", rate_pins_user="1000/60")
    ann = await make_user("ann")
    mods = [await make_user(f"m{i}") for i in range(2)]
    srv = await factories.community(client, ann, *mods)
    await factories.role(client, srv, ann, "mod", 128 | 4 | 2 | 1, *mods)
    msgs = [(await factories.say(client, ann, srv.general, f"m{i}"))["id"] for i in range(53)]
    for m in msgs[:47]:
        done = await client.put(f"/api/channels/{srv.general}/pins/{m}", headers=ann.headers)
        assert done.status_code == 204, done.text
    who = [ann, *mods]
    answers = await gated(
        pool,
        "SELECT 1 FROM channels WHERE id = $1 FOR NO KEY UPDATE",
        UUID(srv.general),
        [
            client.put(f"/api/channels/{srv.general}/pins/{m}", headers=who[i % 3].headers)
            for i, m in enumerate(msgs[47:])
        ],
    )
    assert (
        sorted(a.json()["code"] if a.is_error else "" for a in answers)
        == [""] * 3 + ["TOO_MANY_PINS"] * 3
    ), [a.text for a in answers]
    pinned = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE channel_id = $1 AND pinned_at IS NOT NULL",
        UUID(srv.general),
    )
    notices = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE channel_id = $1 AND kind = 'pin'", UUID(srv.general)
    )
    assert (pinned, notices) == (50, 50)


async def test_invites_made_at_once_by_a_member_never_pass_twenty(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A member without MANAGE_SERVER holding 17 invites makes six more at once: three
    are made, three are TOO_MANY_INVITES (counted under the server's row)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    for _ in range(17):
        done = await client.post(srv.url("/invites"), headers=ben.headers, json={})
        assert done.status_code == 201, done.text
    answers = await gated(
        pool,
        SERVER_ROW,
        UUID(srv.id),
        [client.post(srv.url("/invites"), headers=ben.headers, json={}) for _ in range(6)],
    )
    assert (
        sorted(a.json().get("code", "") if a.is_error else "" for a in answers)
        == [""] * 3 + ["TOO_MANY_INVITES"] * 3
    ), [a.text for a in answers]
    n = await pool.fetchval(
        "SELECT count(*) FROM invites WHERE server_id = $1 AND inviter_id = $2",
        UUID(srv.id),
        ben.id,
    )
    assert n == 20


async def test_people_added_to_a_group_at_once_never_pass_twenty_five(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """The owner of a group of 23 adds five friends at once: two get in, three are
    TOO_MANY_PARTICIPANTS (counted under the group's row)."""
    ann = await make_user("ann")
    first = [await make_user(f"p{i}") for i in range(22)]
    extra = [await make_user(f"x{i}") for i in range(5)]
    await factories.befriend(ann, *extra)
    cid = (await factories.group(client, ann, *first))["id"]
    answers = await gated(
        pool,
        "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE",
        UUID(cid),
        [
            client.put(f"/api/conversations/{cid}/participants/{x.id}", headers=ann.headers)
            for x in extra
        ],
    )
    assert (
        sorted(a.json()["code"] if a.is_error else "" for a in answers)
        == [""] * 2 + ["TOO_MANY_PARTICIPANTS"] * 3
    ), [a.text for a in answers]
    n = await pool.fetchval(
        "SELECT count(*) FROM conversation_participants WHERE channel_id = $1", UUID(cid)
    )
    assert n == 25


async def test_overrides_set_at_once_never_pass_a_hundred_on_a_channel(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Six roles' overrides set at once on a channel holding 97: three are set, three
    are TOO_MANY_OVERRIDES (counted under the server's row)."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    roles = []
    for i in range(103):
        made = await client.post(srv.url("/roles"), headers=ann.headers, json={"name": f"r{i}"})
        assert made.status_code == 201, made.text
        roles.append(made.json()["id"])
    for rid in roles[:97]:
        done = await factories.override(client, ann, srv.general, "role", rid, deny=2)
        assert done.status_code == 200, done.text
    answers = await gated(
        pool,
        SERVER_ROW,
        UUID(srv.id),
        [factories.override(client, ann, srv.general, "role", rid, deny=2) for rid in roles[97:]],
    )
    assert (
        sorted(a.json()["code"] if a.is_error else "" for a in answers)
        == [""] * 3 + ["TOO_MANY_OVERRIDES"] * 3
    ), [a.text for a in answers]
    n = await pool.fetchval(
        "SELECT count(*) FROM channel_permission_overrides WHERE channel_id = $1",
        UUID(srv.general),
    )
    assert n == 100


async def test_bulk_and_single_deletes_racing_pins_reactions_replies(
    app_with: AppWith, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    client = await app_with(rate_messages_user="1000/60", rate_pins_user="1000/60")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    base = f"/api/channels/{srv.general}"
    for r in range(ROUNDS):
        ids = [(await factories.say(client, ben, srv.general, f"m{r}{i}"))["id"] for i in range(3)]
        await burst(
            [
                client.post(
                    f"{base}/messages/bulk-delete", headers=ann.headers, json={"messages": ids}
                ),
                client.delete(f"{base}/messages/{ids[0]}", headers=ben.headers),
                client.put(f"{base}/pins/{ids[1]}", headers=ann.headers),
                client.put(f"{base}/messages/{ids[2]}/reactions/a/@me", headers=ben.headers),
                client.post(
                    f"{base}/messages",
                    headers=ben.headers,
                    json={"content": "re", "reply_to_id": ids[1]},
                ),
                client.patch(
                    f"{base}/messages/{ids[2]}", headers=ben.headers, json={"content": "ed"}
                ),
            ]
        )
        rows = await conn.fetch(
            "SELECT deleted_at, pinned_at, content FROM messages WHERE id = ANY($1::uuid[])",
            [UUID(i) for i in ids],
        )
        for row in rows:
            if row["deleted_at"] is not None:
                assert row["pinned_at"] is None and row["content"] == "", row
        counts = await conn.fetchval(
            "SELECT count(*) FROM reaction_counts rc JOIN messages m ON m.id = rc.message_id"
            " WHERE m.deleted_at IS NOT NULL AND rc.count > 0"
        )
        leftovers = await conn.fetchval(
            "SELECT (SELECT count(*) FROM reactions r JOIN messages m ON m.id = r.message_id"
            "        WHERE m.deleted_at IS NOT NULL)"
            " + (SELECT count(*) FROM message_edits e JOIN messages m ON m.id = e.message_id"
            "    WHERE m.deleted_at IS NOT NULL)"
        )
        assert (counts, leftovers) == (0, 0)


async def test_a_group_call_joined_by_many_at_once_holds_the_mesh_limit(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    from xfchat.errors import XFChatError

    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(9)]
    cid = (await factories.group(client, ann, *people))["id"]

    async def join(who: TestUser) -> str:
        try:
            await factories.voice_join(pool, who, cid)
        except XFChatError as refused:
            return str(refused.code)
        return ""

    got = await asyncio.gather(*[join(p) for p in [ann, *people]])
    assert sorted(got) == [""] * 8 + ["CHANNEL_FULL"] * 2, got
    held = await pool.fetchval("SELECT count(*) FROM voice_states WHERE channel_id = $1", UUID(cid))
    assert held == 8


async def test_one_username_taken_by_several_at_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Five accounts take one username at once: one has it, the others are USERNAME_TAKEN."""
    people = [await make_user(f"p{i}") for i in range(5)]
    for r in range(2):
        answers = await burst(
            [
                client.patch(
                    "/api/users/@me",
                    headers=p.headers,
                    json={"username": f"taken{r}", "password": PASSWORD},
                )
                for p in people
            ]
        )
        assert ok(answers) == 1, [a.text for a in answers]
        assert {a.json()["code"] for a in answers if a.is_error} == {"USERNAME_TAKEN"}


async def test_accept_racing_an_opened_direct_conversation(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """An accept (which opens the pair's direct conversation) while both open it: one
    direct conversation."""
    for r in range(ROUNDS):
        ann, ben = await make_user(f"a{r}"), await make_user(f"b{r}")
        sent = await client.post(
            "/api/users/@me/friend-requests", headers=ann.headers, json={"username": f"b{r}"}
        )
        rid = sent.json()["id"]
        answers = await burst(
            [
                client.post(f"/api/users/@me/friend-requests/{rid}/accept", headers=ben.headers),
                client.post(
                    "/api/conversations",
                    headers=ann.headers,
                    json={"kind": "direct", "user_id": str(ben.id)},
                ),
                client.post(
                    "/api/conversations",
                    headers=ben.headers,
                    json={"kind": "direct", "user_id": str(ann.id)},
                ),
            ]
        )
        ids = {
            a.json().get("conversation_id") or a.json().get("id") for a in answers if a.is_success
        }
        n = await pool.fetchval(
            "SELECT count(*) FROM channels c WHERE c.kind = 'direct' AND EXISTS"
            " (SELECT 1 FROM conversation_participants p WHERE p.channel_id = c.id AND p.user_id = $1)",
            ann.id,
        )
        assert n == 1, (ids, [a.text for a in answers])


async def test_everyone_leaving_a_group_at_once_ends_it(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Every participant leaves at once (the owner too): the group goes with its last
    one, never left standing empty or owned by someone gone."""
    for r in range(ROUNDS):
        people = [await make_user(f"p{r}{i}") for i in range(4)]
        cid = (await factories.group(client, people[0], *people[1:]))["id"]
        await burst(
            [
                client.delete(f"/api/conversations/{cid}/participants/@me", headers=p.headers)
                for p in people
            ]
        )
        left = await pool.fetchval("SELECT count(*) FROM channels WHERE id = $1", UUID(cid))
        assert left == 0


async def test_a_refresh_racing_its_sessions_logout_leaves_nothing_usable(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A session logged out while its refresh token is used (twice) at once: once the
    logout answered 204, no token the refreshes got works."""
    for r in range(ROUNDS * 2):
        ann = await make_user(f"a{r}")
        answers = await burst(
            [
                client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token}),
                client.post("/api/auth/logout", headers=ann.headers),
                client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token}),
            ]
        )
        assert answers[1].status_code == 204, answers[1].text
        for got in (answers[0], answers[2]):
            if got.is_success:
                me = await client.get(
                    "/api/users/@me",
                    headers={"Authorization": f"Bearer {got.json()['access_token']}"},
                )
                assert me.status_code == 401, me.text
                again = await client.post(
                    "/api/auth/refresh", json={"refresh_token": got.json()["refresh_token"]}
                )
                assert again.status_code == 401, again.text


async def test_reaction_counts_follow_a_storm_of_toggles(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Six members add and take back two emoji (one spelt two ways) on one message at
    once: the kept counts are the reactions there, emoji by emoji."""
    client = await app_with(rate_reactions_user="1000/60")
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(6)]
    srv = await factories.community(client, ann, *people)
    msg = await factories.say(client, ann, srv.general, "m")
    url = f"/api/channels/{srv.general}/messages/{msg['id']}/reactions"
    spellings = ["\U0001f44d", "\U0001f44d\ufe0f", "ok"]
    for r in range(ROUNDS * 2):
        await burst(
            [
                (client.put if (i + r) % 3 else client.delete)(
                    f"{url}/{spellings[(i + r) % 3]}/@me", headers=p.headers
                )
                for i, p in enumerate(people)
            ]
        )
        wrong = await pool.fetch(
            """
            SELECT coalesce(rc.emoji, r.emoji) AS emoji, rc.count, r.n
            FROM reaction_counts rc
            FULL JOIN (SELECT message_id, emoji, count(*) AS n FROM reactions
                       WHERE message_id = $1 GROUP BY 1, 2) r
              ON r.message_id = rc.message_id AND r.emoji = rc.emoji
            WHERE coalesce(rc.message_id, r.message_id) = $1
              AND coalesce(rc.count, 0) <> coalesce(r.n, 0)
            """,
            UUID(msg["id"]),
        )
        assert wrong == [], wrong


async def test_one_message_id_sent_to_two_channels_at_once_is_one_message(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """The same client id PUT in two channels (and a conversation) at once: one is
    stored, the others are refused with a code (never a 500, never two)."""
    client = await app_with(rate_messages_user="1000/60")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    other = (await factories.server_channel(client, srv, ann, "other"))["id"]
    dm = (await factories.direct(client, ann, ben))["id"]
    for _ in range(ROUNDS):
        mid = str(uuid.uuid4())
        answers = await burst(
            [
                client.put(
                    f"/api/channels/{c}/messages/{mid}", headers=w.headers, json={"content": "x"}
                )
                for c in (srv.general, other, dm)
                for w in (ann, ben)
            ]
        )
        assert sum(a.status_code == 201 for a in answers) == 1, [a.text for a in answers]
        n = await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", UUID(mid))
        assert n == 1


async def test_an_invites_uses_count_only_newcomers_in_a_crowd(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Members already in use an invite of max_uses 2 alongside newcomers, all at
    once: a member's repeat takes no use, so two newcomers get in and uses is 2."""
    ann = await make_user("ann")
    old = [await make_user(f"o{i}") for i in range(3)]
    new = [await make_user(f"n{i}") for i in range(4)]
    srv = await factories.community(client, ann, *old)
    made = await client.post(srv.url("/invites"), headers=ann.headers, json={"max_uses": 2})
    code = made.json()["code"]
    answers = await burst(
        [client.post(f"/api/invites/{code}", headers=p.headers) for p in (*old, *new)]
    )
    assert sorted(a.status_code for a in answers[:3]) == [200, 200, 200], [a.text for a in answers]
    assert sum(a.status_code == 201 for a in answers[3:]) == 2, [a.text for a in answers]
    uses = await pool.fetchval("SELECT uses FROM invites WHERE code = $1", code)
    members = await pool.fetchval(
        "SELECT count(*) FROM server_members WHERE server_id = $1", UUID(srv.id)
    )
    assert (uses, members) == (2, 6)


async def test_servers_made_and_joined_at_once_never_pass_two_hundred(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A member of 198 servers makes two and joins three at once: two of the five get
    in, the others are TOO_MANY_SERVERS."""
    ann, bob = await make_user("ann"), await make_user("bob")
    for _ in range(198):
        await factories.server(pool, bob, ann)
    cat = await make_user("cat")
    others = [await factories.community(client, cat, name=f"s{i}") for i in range(3)]
    answers = await burst(
        [client.post("/api/servers", headers=ann.headers, json={"name": f"m{i}"}) for i in range(2)]
        + [client.post(f"/api/invites/{s.invite}", headers=ann.headers) for s in others]
    )
    assert (
        sorted(a.json()["code"] if a.is_error else "" for a in answers)
        == [""] * 2 + ["TOO_MANY_SERVERS"] * 3
    ), [a.text for a in answers]
    n = await pool.fetchval("SELECT count(*) FROM server_members WHERE user_id = $1", ann.id)
    assert n == 200
