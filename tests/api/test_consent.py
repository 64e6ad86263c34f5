"""Who may put you in a conversation: only friends add you to groups; blocks hold in
every group, whoever makes it; direct messages follow your choice; and no refusal tells
anyone that a block is why."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import httpx

from tests import factories
from tests.db.test_send_gate import prepare
from tests.factories import MakeUser, TestUser, lock_waiters
from tests.support import until_one_waits_for_a_lock
from xfchat.domain import friends, profile


async def new_group(
    client: httpx.AsyncClient, owner: TestUser, *people: TestUser
) -> httpx.Response:
    return await client.post(
        "/api/conversations",
        headers=owner.headers,
        json={"kind": "group", "participant_ids": [str(p.id) for p in people]},
    )


async def add(
    client: httpx.AsyncClient, owner: TestUser, group: str, who: TestUser
) -> httpx.Response:
    return await client.put(
        f"/api/conversations/{group}/participants/{who.id}", headers=owner.headers
    )


async def block(client: httpx.AsyncClient, blocker: TestUser, blocked: TestUser) -> None:
    r = await client.put(f"/api/users/@me/blocks/{blocked.id}", headers=blocker.headers)
    assert r.status_code == 204


async def open_direct(client: httpx.AsyncClient, a: TestUser, b: TestUser) -> httpx.Response:
    return await client.post(
        "/api/conversations", headers=a.headers, json={"kind": "direct", "user_id": str(b.id)}
    )


def refused_to_add(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "CANNOT_ADD_USER"
    return dict(response.json())


async def test_only_your_friends_can_put_you_in_a_group(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    spammer, victim, friend = (
        await make_user("spammer"),
        await make_user("victim"),
        await make_user(),
    )
    refused_to_add(await new_group(client, spammer, victim))  # main: 201, a thousand times over
    await factories.befriend(spammer, friend)
    made = await new_group(client, spammer, friend)
    assert made.status_code == 201
    refused_to_add(await add(client, spammer, made.json()["id"], victim))
    await factories.befriend(spammer, victim)
    assert (await add(client, spammer, made.json()["id"], victim)).status_code == 200
    mine = await client.get("/api/conversations", headers=victim.headers)
    assert [c["id"] for c in mine.json()] == [made.json()["id"]]


async def test_a_blocked_user_adding_you_gets_the_answer_a_stranger_gets(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    victim, former, stranger, pal = [
        await make_user(n) for n in ("victim", "former", "stranger", "pal")
    ]
    await factories.befriend(former, victim, pal)
    await block(client, victim, former)  # (ends the friendship)
    as_blocked = refused_to_add(await new_group(client, former, victim))
    as_stranger = refused_to_add(await new_group(client, stranger, victim))
    assert as_blocked == as_stranger
    group = (await new_group(client, former, pal)).json()["id"]
    assert refused_to_add(await add(client, former, group, victim)) == as_stranger


async def test_a_third_party_cannot_put_a_blocked_pair_in_one_group(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, bad, cid = await make_user("ann"), await make_user("bad"), await make_user("cid")
    await factories.befriend(cid, ann, bad)
    await block(client, ann, bad)
    refused_to_add(await new_group(client, cid, ann, bad))  # main: 201, and bad writes to ann
    with_ann = (await new_group(client, cid, ann)).json()["id"]
    refused_to_add(await add(client, cid, with_ann, bad))
    with_bad = (await new_group(client, cid, bad)).json()["id"]
    refused_to_add(await add(client, cid, with_bad, ann))  # whichever way the block goes


Change = Callable[[asyncpg.Connection], Awaitable[object]]


async def after_a_change_under_way(
    pool: asyncpg.Pool, change: Change, request: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """`request`'s answer when it comes while `change` is under way (held open here on
    a connection of its own): it must wait for the change, then judge after it."""
    async with pool.acquire() as conn, conn.transaction():
        await change(conn)
        answer = asyncio.ensure_future(request())
        await until_one_waits_for_a_lock(conn, answer)
        assert not answer.done(), (await answer).text  # main: written before the change
    return await answer


async def test_a_group_takes_nobody_across_a_block_or_an_unfriending_under_way(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    """Was: a group made or joined while a block or an unfriending was under way did
    not wait for it, and held a stranger or a blocked pair once both committed. Now its
    checks take the pairs' locks (newcomer with everyone there, adder included), as
    those changes do."""
    own, ann, bad, cid, dee = [await make_user(n) for n in ("own", "ann", "bad", "cid", "dee")]
    await factories.befriend(own, ann, bad, cid, dee)
    group = (await new_group(client, own, ann)).json()["id"]
    cases: list[tuple[Change, Callable[[], Awaitable[httpx.Response]]]] = [
        # someone already there blocks the newcomer
        (lambda c: friends.block_user(c, ann.actor, bad.id), lambda: add(client, own, group, bad)),
        # the newcomer unfriends the adder
        (
            lambda c: friends.remove_friend(c, cid.actor, own.id),
            lambda: new_group(client, own, cid),
        ),
        # one newcomer blocks another
        (
            lambda c: friends.block_user(c, dee.actor, ann.id),
            lambda: new_group(client, own, ann, dee),
        ),
    ]
    for change, request in cases:
        refused_to_add(await after_a_change_under_way(pool, change, request))
    mine = await client.get("/api/conversations", headers=own.headers)
    assert [c["id"] for c in mine.json()] == [group]


async def test_opening_a_direct_conversation_waits_for_a_block_or_a_choice_under_way(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    """Was: opened while the other's block (or choice of friends only) was under way,
    it was created after it (201, the blocker told of a conversation.created)."""
    ann, bad, dee = await make_user("ann"), await make_user("bad"), await make_user("dee")
    changes: list[tuple[Change, TestUser]] = [
        (lambda c: friends.block_user(c, ann.actor, bad.id), ann),
        (lambda c: profile.set_dm_policy(c, dee.actor, "friends"), dee),
    ]
    for change, other in changes:
        opened = await after_a_change_under_way(
            pool, change, lambda other=other: open_direct(client, bad, other)
        )
        assert opened.status_code == 403 and opened.json()["code"] == "CANNOT_MESSAGE_USER"
    assert (await client.get("/api/conversations", headers=bad.headers)).json() == []


async def test_opening_a_direct_conversation_never_reveals_a_block(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, dee, bad = await make_user("ann"), await make_user("dee"), await make_user("bad")
    await block(client, ann, bad)
    private = await client.put(
        "/api/users/@me/privacy", headers=dee.headers, json={"direct_messages": "friends"}
    )
    assert private.status_code == 200 and private.json() == {"direct_messages": "friends"}
    blocked = await open_direct(client, bad, ann)
    friends_only = await open_direct(client, bad, dee)
    assert blocked.status_code == friends_only.status_code == 403
    assert blocked.json() == friends_only.json()  # main: 403 for ann, 201 for dee
    assert blocked.json()["code"] == "CANNOT_MESSAGE_USER"
    await factories.befriend(dee, bad)
    assert (await open_direct(client, bad, dee)).status_code == 201


async def test_friends_only_closes_open_conversations_to_strangers_as_a_block_does(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, dee, bad = await make_user("ann"), await make_user("dee"), await make_user("bad")
    with_ann = (await open_direct(client, bad, ann)).json()["id"]
    with_dee = (await open_direct(client, bad, dee)).json()["id"]
    await block(client, ann, bad)
    await client.put(
        "/api/users/@me/privacy", headers=dee.headers, json={"direct_messages": "friends"}
    )
    to_ann = await factories.send_message(client, bad, with_ann, "hi")
    to_dee = await factories.send_message(client, bad, with_dee, "hi")
    assert to_ann.status_code == to_dee.status_code == 403
    assert to_ann.json() == to_dee.json()
    # dee's own choice does not stop dee: bad takes messages from everyone.
    assert (await factories.send_message(client, dee, with_dee, "yes?")).status_code == 201
    back = await client.put(
        "/api/users/@me/privacy", headers=dee.headers, json={"direct_messages": "everyone"}
    )
    assert back.status_code == 200
    assert (await factories.send_message(client, bad, with_dee, "hi")).status_code == 201


async def test_the_privacy_setting_is_yours_alone(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann = await make_user()
    mine = await client.get("/api/users/@me/privacy", headers=ann.headers)
    assert mine.status_code == 200 and mine.json() == {"direct_messages": "everyone"}
    wrong = await client.put(
        "/api/users/@me/privacy", headers=ann.headers, json={"direct_messages": "nobody"}
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "VALIDATION_ERROR"
    profile = await client.get(f"/api/users/{ann.id}", headers=ann.headers)
    assert "direct_messages" not in profile.json() and "dm_policy" not in profile.json()
    # Was: a change said nothing to your other sessions (their settings went stale).
    await client.put(
        "/api/users/@me/privacy", headers=ann.headers, json={"direct_messages": "friends"}
    )
    told = await factories.events_of(conn, "user", UUID(str(ann.id)))
    assert ("privacy.updated", {"direct_messages": "friends"}) in told


async def test_closing_a_direct_conversation_waits_for_a_send_under_way(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    """A send checks access with the channel key-share locked, and every change of who
    may write there bumps its access version (taking the lock): the change comes wholly
    before the send (which then sees it) or after it, never in between."""
    ann, bad, cid, dee = [await make_user(n) for n in ("ann", "bad", "cid", "dee")]
    await factories.befriend(cid, dee)
    await client.put(
        "/api/users/@me/privacy", headers=dee.headers, json={"direct_messages": "friends"}
    )
    to_ann = UUID((await open_direct(client, bad, ann)).json()["id"])
    to_dee = UUID((await open_direct(client, cid, dee)).json()["id"])

    async def choose_friends_only(conn: asyncpg.Connection) -> None:
        await profile.set_dm_policy(conn, ann.actor, "friends")

    async def unfriend(conn: asyncpg.Connection) -> None:
        await friends.remove_friend(conn, dee.actor, cid.id)

    changes: list[tuple[UUID, TestUser, Callable[[asyncpg.Connection], Awaitable[None]]]] = [
        (to_ann, bad, choose_friends_only),
        (to_dee, cid, unfriend),
    ]
    for channel, sender, change in changes:

        async def run(change: Callable[[asyncpg.Connection], Awaitable[None]] = change) -> None:
            async with pool.acquire() as conn:
                await change(conn)

        async with pool.acquire() as conn, conn.transaction():
            state = await prepare(conn, channel, sender.id)  # the send's check, still open
            assert [f["closed"] for f in state.facts] == [False]
            closing = asyncio.create_task(run())
            # Was: the change committed at once, and the send wrote after it.
            await lock_waiters(pool, timeout=5)
            assert not closing.done()
        await asyncio.wait_for(closing, 5)
        async with pool.acquire() as conn, conn.transaction():
            after = await prepare(conn, channel, sender.id)
        assert [f["closed"] for f in after.facts] == [True]
