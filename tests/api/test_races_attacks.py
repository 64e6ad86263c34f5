"""Races, attacked: requests sent at the same instant by ordinary accounts, each of which
alone is refused (or alone leaves a sound state), must not together pass a bound or
leave the database in a state no sequence of single requests could. No sleeps: where
the contenders pass through a lock (an account's, a server's row, a rate-limit bucket's
row, a channel's counter), the test holds it until all of them wait (pg_stat_activity),
then lets them go at once, so they race from one start, or in the one order that lets a
missing lock show. Each test was seen to fail with the lock or check it relies on taken
out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.test_attachments import part, post_files
from tests.api.test_two_factor import BASE as TWO_FACTOR
from tests.api.test_two_factor import code_at, password_step, second_step, turn_on
from tests.factories import AppWith, MakeUser, TestUser, lock_waiters
from xfchat.db.queries import locks as locks_q
from xfchat.domain import account_lock, conversations
from xfchat.domain.permissions import Permission
from xfchat.domain.rate_limits import bucket_key
from xfchat.errors import XFChatError


@asynccontextmanager
async def held_account(pool: asyncpg.Pool, user: TestUser) -> AsyncIterator[None]:
    """Hold `user`'s account lock alone (as a deletion would) until the block ends:
    every write that puts the account somewhere waits on it first."""
    async with pool.acquire() as conn, conn.transaction():
        await account_lock.lock_for_deletion(conn, user.id)
        yield


async def all_at_once(
    pool: asyncpg.Pool, user: TestUser, requests: Sequence[Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Start `requests`, wait until each waits on `user`'s account lock, then let them
    all go at the same instant; their answers, in order."""
    async with held_account(pool, user):
        tasks = [asyncio.ensure_future(r) for r in requests]
        await lock_waiters(pool, at_least=len(tasks))
    return list(await asyncio.gather(*tasks))


async def conversation_count(conn: asyncpg.Connection, user: TestUser) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM conversation_participants WHERE user_id = $1", user.id
        )
    )


async def waiting_or_done(pool: asyncpg.Pool, at_least: int, pending: asyncio.Future[Any]) -> None:
    """Return once `at_least` sessions wait for a lock, or `pending` is done without
    waiting (what the test then finds says whether it should have)."""
    waiting: asyncio.Future[Any] = asyncio.ensure_future(lock_waiters(pool, at_least=at_least))
    await asyncio.wait([waiting, pending], return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting


def codes(answers: Sequence[httpx.Response]) -> list[str]:
    return sorted(a.json().get("code", "") if a.is_error else "" for a in answers)


def new_conversation(
    client: httpx.AsyncClient, opener: TestUser, kind: str, other: TestUser
) -> Awaitable[httpx.Response]:
    """`opener` starts a group with `other`, or opens their direct conversation."""
    other_id = str(other.id)
    body = (
        {"kind": "group", "participant_ids": [other_id]}
        if kind == "group"
        else {"kind": "direct", "user_id": other_id}
    )
    return client.post("/api/conversations", headers=opener.headers, json=body)


async def one_takes_the_place(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    user: TestUser,
    requests: Sequence[Awaitable[httpx.Response]],
    *,
    places: int,
) -> None:
    """Each of `requests` would put `user` in one more conversation, with one place left:
    sent at once, one succeeds, the others are TOO_MANY_CONVERSATIONS, and `user` is in
    `places` conversations."""
    answers = await all_at_once(pool, user, requests)
    texts = [a.text for a in answers]
    assert {a.status_code for a in answers} <= {200, 201, 403}, texts
    assert codes(answers) == ["", *["TOO_MANY_CONVERSATIONS"] * (len(answers) - 1)], texts
    assert await conversation_count(conn, user) == places


async def test_groups_made_at_once_never_pass_a_persons_conversation_bound(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four friends of zoe each start a group with her at once, one place left to her:
    one group takes it, the others are TOO_MANY_CONVERSATIONS."""
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS_PER_USER", 2)
    zoe = await make_user("zoe")
    owners = [await make_user(f"own{i}") for i in range(4)]
    first = await factories.group(client, owners[0], zoe)
    assert first["id"]
    for owner in owners:
        await factories.befriend(owner, zoe)
    await one_takes_the_place(
        pool,
        conn,
        zoe,
        [new_conversation(client, owner, "group", zoe) for owner in owners],
        places=2,
    )


async def test_direct_conversations_opened_at_once_never_pass_the_bound(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four strangers open a direct conversation with zoe at once (she takes direct
    messages from anyone), one place left to her."""
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS_PER_USER", 2)
    zoe = await make_user("zoe")
    others = [await make_user(f"dm{i}") for i in range(4)]
    await factories.direct(client, others[0], zoe)
    await one_takes_the_place(
        pool,
        conn,
        zoe,
        [new_conversation(client, other, "direct", zoe) for other in others[1:]],
        places=2,
    )


async def test_adds_to_groups_at_once_never_pass_a_persons_conversation_bound(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three owners of groups add zoe to theirs at once, one place left to her."""
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS_PER_USER", 3)
    zoe = await make_user("zoe")
    owners = [await make_user(f"own{i}") for i in range(3)]
    groups = []
    for owner in owners:
        helper = await make_user()
        groups.append((await factories.group(client, owner, helper))["id"])
        await factories.befriend(owner, zoe)
    await factories.direct(client, owners[0], zoe)
    await factories.group(client, owners[1], zoe)
    assert await conversation_count(conn, zoe) == 2
    await one_takes_the_place(
        pool,
        conn,
        zoe,
        [
            client.put(f"/api/conversations/{gid}/participants/{zoe.id}", headers=owner.headers)
            for owner, gid in zip(owners, groups, strict=True)
        ],
        places=3,
    )


async def test_every_way_into_a_conversation_at_once_takes_the_last_place_once(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One place left to zoe, and at once: she is added to a group, put in a new one, a
    stranger opens a direct conversation with her, and she asks back someone who asked
    her to be friends (which accepts, and opens their direct conversation)."""
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS_PER_USER", 2)
    zoe, adder, maker, stranger, asker, helper = [
        await make_user(n) for n in ("zoe", "adder", "maker", "stranger", "asker", "helper")
    ]
    await factories.group(client, maker, zoe)
    gid = (await factories.group(client, adder, helper))["id"]
    await factories.befriend(adder, zoe)
    asked = await client.post(
        "/api/users/@me/friend-requests", headers=asker.headers, json={"username": "zoe"}
    )
    assert asked.status_code == 201, asked.text
    await one_takes_the_place(
        pool,
        conn,
        zoe,
        [
            client.put(f"/api/conversations/{gid}/participants/{zoe.id}", headers=adder.headers),
            new_conversation(client, maker, "group", zoe),
            new_conversation(client, stranger, "direct", zoe),
            client.post(
                "/api/users/@me/friend-requests", headers=zoe.headers, json={"username": "asker"}
            ),
        ],
        places=2,
    )


@asynccontextmanager
async def held_rows(pool: asyncpg.Pool, query: str, *args: object) -> AsyncIterator[None]:
    """Hold the rows `query` (a SELECT ... FOR UPDATE) locks until the block ends."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(query, *args)
        yield


async def test_recovery_codes_made_anew_twice_at_once_leave_one_set_of_ten(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """Two requests for new recovery codes at once, each with an earlier recovery code:
    one answers ten, and the other, its code voided by those, is refused; only the ten
    answered work (never twenty, never the earlier ones)."""
    ann = await make_user("ann")
    _, earlier = await turn_on(client, ann)
    # Both reach the old codes' rows before either commits (held here meanwhile).
    async with held_rows(
        pool, "SELECT 1 FROM recovery_codes WHERE user_id = $1 FOR UPDATE", ann.id
    ):
        tasks = [
            asyncio.ensure_future(
                client.post(
                    f"{TWO_FACTOR}/recovery-codes",
                    headers=ann.headers,
                    json={"password": ann.password, "code": code},
                )
            )
            for code in earlier[:2]
        ]
        await lock_waiters(pool, at_least=2)
    answers = await asyncio.gather(*tasks)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 400], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 400)
    assert refused.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    status = (await client.get(TWO_FACTOR, headers=ann.headers)).json()
    assert status == {"enabled": True, "recovery_codes_left": 10}
    unused = await conn.fetchval(
        "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL", ann.id
    )
    assert unused == 10
    made = next(a for a in answers if a.status_code == 200).json()["recovery_codes"]
    working = []
    for codes_ in (earlier[2:], made):
        ticket = await password_step(client, ann)
        working.append((await second_step(client, ticket, codes_[0])).status_code == 200)
    assert working == [False, True], working


async def test_enabling_while_setting_up_again_never_turns_on_an_unproved_secret(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """A code of the pending secret sent to /enable while /setup replaces that secret:
    either the setup comes first (the code is of a secret no longer pending: refused)
    or the enable does (the setup is TWO_FACTOR_ENABLED); never both, which would turn
    on a secret nobody proved a code of."""
    ann = await make_user("ann")
    setup = await client.post(
        f"{TWO_FACTOR}/setup", headers=ann.headers, json={"password": ann.password}
    )
    assert setup.status_code == 200, setup.text
    proved = setup.json()["secret"]
    async with held_rows(pool, "SELECT 1 FROM user_totp WHERE user_id = $1 FOR UPDATE", ann.id):
        again = asyncio.ensure_future(
            client.post(f"{TWO_FACTOR}/setup", headers=ann.headers, json={"password": ann.password})
        )
        await lock_waiters(pool, at_least=1)
        enable = asyncio.ensure_future(
            client.post(f"{TWO_FACTOR}/enable", headers=ann.headers, json={"code": code_at(proved)})
        )
        await lock_waiters(pool, at_least=2)
    answers = await asyncio.gather(again, enable)
    assert sorted(a.status_code for a in answers) in ([200, 400], [200, 409]), [
        a.text for a in answers
    ]
    enabled = (await client.get(TWO_FACTOR, headers=ann.headers)).json()["enabled"]
    assert enabled == (answers[1].status_code == 200)
    if enabled:  # the secret on is the one the code proved
        ticket = await password_step(client, ann)
        assert (await second_step(client, ticket, code_at(proved, 1))).status_code == 200
    else:
        assert answers[1].json()["code"] == "WRONG_TWO_FACTOR_CODE"
        pending = answers[0].json()["secret"]
        turned = await client.post(
            f"{TWO_FACTOR}/enable", headers=ann.headers, json={"code": code_at(pending)}
        )
        assert turned.status_code == 200, turned.text
    assert await conn.fetchval("SELECT count(*) FROM user_totp WHERE user_id = $1", ann.id) == 1


@pytest.mark.parametrize(
    ("path", "answered"),
    [
        ("/api/users/@me/password", 204),
        (f"{TWO_FACTOR}/disable", 204),
        (f"{TWO_FACTOR}/recovery-codes", 200),
    ],
)
async def test_a_code_spent_by_a_signed_in_change_and_a_login_at_once_never_deadlock(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, path: str, answered: int
) -> None:
    """A password change, turning two-factor sign-in off and new recovery codes spend a
    code; the login's second step locks the authenticator's row, spends its code, then
    takes the sessions lock to start its session. Each of the three took the sessions
    lock before the authenticator's row, so with the change waiting at the sessions
    lock and the login at it too, the change then waited for the login's row: a
    deadlock, one of them answered 503 DATABASE_CONFLICT. One order (the row first, as
    the login, turning it on and deleting the account take them): the change comes
    first, and the login's ticket, issued before it, is refused."""
    ann = await make_user("ann")
    secret, recovery = await turn_on(client, ann)
    ticket = await password_step(client, ann)
    body: dict[str, str] = {"password": ann.password, "code": code_at(secret, 1)}
    if path.endswith("/password"):
        body = {
            "current_password": ann.password,
            "new_password": "another pass 77",
            "code": body["code"],
        }
    async with pool.acquire() as holder, holder.transaction():
        await locks_q.lock_transaction(holder, key=locks_q.advisory_key(b"sessions", ann.id))
        change = asyncio.ensure_future(client.post(path, headers=ann.headers, json=body))
        await lock_waiters(pool, at_least=1)
        login = asyncio.ensure_future(second_step(client, ticket, recovery[0]))
        await lock_waiters(pool, at_least=2)
    changed, logged_in = await asyncio.gather(change, login)
    assert (changed.status_code, logged_in.status_code) == (answered, 401), (
        changed.text,
        logged_in.text,
    )
    assert logged_in.json()["code"] == "INVALID_TICKET"


async def test_slowmode_holds_for_sends_through_two_processes_at_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, app_with: AppWith
) -> None:
    """A member in a slowmode channel sends twice at once, each send through another
    server process (each has its own writer, so the two batches are in flight together):
    one is written, the other is 429 SLOWMODE. Held here: the first batch waits to take
    its sequence number while the second has begun to read."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    slow = await client.patch(
        f"/api/channels/{srv.general}", headers=ann.headers, json={"rate_limit_per_user": 60}
    )
    assert slow.status_code == 200, slow.text
    other = await app_with(ip="127.0.0.2")
    url = f"/api/channels/{srv.general}/messages"
    async with held_rows(
        pool, "SELECT 1 FROM channels WHERE id = $1 FOR NO KEY UPDATE", UUID(srv.general)
    ):
        first = asyncio.ensure_future(
            client.post(url, headers=ben.headers, json={"content": "one"})
        )
        await lock_waiters(pool, at_least=1)
        second = asyncio.ensure_future(
            other.post(url, headers=ben.headers, json={"content": "two"})
        )
        await lock_waiters(pool, at_least=2)
    answers = await asyncio.gather(first, second)
    assert sorted(a.status_code for a in answers) == [201, 429], [a.text for a in answers]
    assert codes(answers) == ["", "SLOWMODE"]
    history = await client.get(url, headers=ann.headers)
    assert [m["content"] for m in history.json()] == ["one"]


async def test_slowmode_holds_for_a_file_and_a_text_sent_at_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """One process: a send with a file is written in a transaction of its own, beside
    the channel's batch of text sends; sent at once in a slowmode channel, one is
    written and the other is 429 SLOWMODE. Held here: the file's transaction waits to
    take its sequence number while the text's batch has begun to read."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    slow = await client.patch(
        f"/api/channels/{srv.general}", headers=ann.headers, json={"rate_limit_per_user": 60}
    )
    assert slow.status_code == 200, slow.text
    url = f"/api/channels/{srv.general}/messages"
    async with held_rows(
        pool, "SELECT 1 FROM channels WHERE id = $1 FOR NO KEY UPDATE", UUID(srv.general)
    ):
        filed = asyncio.ensure_future(
            post_files(client, ben, srv.general, [part("a.txt", b"one")], "one")
        )
        await lock_waiters(pool, at_least=1)
        text = asyncio.ensure_future(client.post(url, headers=ben.headers, json={"content": "two"}))
        await lock_waiters(pool, at_least=2)
    answers = await asyncio.gather(filed, text)
    assert [a.status_code for a in answers] == [201, 429], [a.text for a in answers]
    assert answers[1].json()["code"] == "SLOWMODE"
    history = (await client.get(url, headers=ann.headers)).json()
    assert [m["content"] for m in history] == ["one"]


async def commit_of(conn: asyncpg.Connection, kind: str, entity: object, event_type: str) -> int:
    """The place in the global commit order (event_commits.g) of the commit that wrote
    the one `event_type` event of a stream."""
    (g,) = [
        r["g"]
        for r in await conn.fetch(
            """
            SELECT c.g FROM events e
            JOIN event_streams s ON s.id = e.stream_id
            JOIN event_commits c ON c.stream_id = e.stream_id
                 AND e.pos BETWEEN c.first_pos AND c.last_pos
            WHERE s.kind = $1 AND s.entity_id = $2 AND e.type = $3
            """,
            kind,
            UUID(str(entity)),
            event_type,
        )
    ]
    return int(g)


async def test_a_send_under_way_and_a_revoke_are_one_before_the_other(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """ben's send has read that he may send (and that cid may see it) when ann takes
    the channel from both: the send is written and committed before the revoke (which
    waits for it), so cid is told of the message before the channel is hidden from
    him; after it, ben is refused. Held here: the send, its channel share-locked, waits
    for its rate-limit bucket."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await factories.community(client, ann, ben, cid)
    url = f"/api/channels/{srv.general}/messages"
    await factories.say(client, ben, srv.general, "first")  # (its bucket's row is made)
    bucket = bucket_key("messages.send", f"{ben.id}:{srv.general}")
    deny = str(int(Permission.VIEW_CHANNEL))
    async with held_rows(pool, "SELECT 1 FROM rate_limits WHERE bucket = $1 FOR UPDATE", bucket):
        sent = asyncio.ensure_future(client.post(url, headers=ben.headers, json={"content": "hi"}))
        await lock_waiters(pool, at_least=1)
        revoked = asyncio.ensure_future(
            client.put(
                f"/api/channels/{srv.general}/overrides/role/{srv.everyone_role}",
                headers=ann.headers,
                json={"allow": "0", "deny": deny},
            )
        )
        await waiting_or_done(pool, 2, revoked)
    answers = await asyncio.gather(sent, revoked)
    assert [a.status_code for a in answers] == [201, 200], [a.text for a in answers]
    seq = answers[0].json()["seq"]
    created = [
        g
        for g in await conn.fetch(
            """
            SELECT c.g FROM events e
            JOIN event_streams s ON s.id = e.stream_id
            JOIN event_commits c ON c.stream_id = e.stream_id
                 AND e.pos BETWEEN c.first_pos AND c.last_pos
            WHERE s.kind = 'channel' AND s.entity_id = $1 AND e.type = 'message.created'
              AND (e.data->>'seq')::int = $2
            """,
            UUID(srv.general),
            seq,
        )
    ]
    hidden = await commit_of(conn, "user", cid.id, "channel.hidden")
    assert len(created) == 1 and created[0]["g"] < hidden
    again = await client.post(url, headers=ben.headers, json={"content": "again"})
    assert again.status_code == 404 and again.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_an_invite_for_one_use_taken_by_four_at_once_lets_one_in(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """Four people use an invite of max_uses 1 at once (each read it as usable before
    any of them joined): one joins, the others are INVITE_NOT_FOUND."""
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(4)]
    srv = await factories.community(client, ann)
    made = await client.post(srv.url("/invites"), headers=ann.headers, json={"max_uses": 1})
    code = made.json()["code"]
    async with held_rows(pool, "SELECT 1 FROM servers WHERE id = $1 FOR UPDATE", UUID(srv.id)):
        tasks = [
            asyncio.ensure_future(client.post(f"/api/invites/{code}", headers=p.headers))
            for p in people
        ]
        await lock_waiters(pool, at_least=len(tasks))
    answers = await asyncio.gather(*tasks)
    assert codes(answers) == ["", *["INVITE_NOT_FOUND"] * 3], [a.text for a in answers]
    members = await conn.fetchval(
        "SELECT count(*) FROM server_members WHERE server_id = $1", UUID(srv.id)
    )
    assert members == 2
    uses = await conn.fetchval("SELECT uses FROM invites WHERE code = $1", code)
    assert uses == 1


async def test_a_voice_channel_joined_by_many_at_once_holds_its_user_limit(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """Four members join a voice channel of user_limit 2 at once: two are in, two are
    CHANNEL_FULL."""
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(4)]
    srv = await factories.community(client, ann, *people)
    made = await factories.server_channel(client, srv, ann, "lounge", kind="voice", user_limit=2)

    async def join(who: TestUser) -> str:
        try:
            await factories.voice_join(pool, who, made["id"])
        except XFChatError as refused:
            return str(refused.code)
        return ""

    async with held_rows(pool, "SELECT 1 FROM servers WHERE id = $1 FOR UPDATE", UUID(srv.id)):
        tasks = [asyncio.ensure_future(join(p)) for p in people]
        await lock_waiters(pool, at_least=len(tasks))
    assert sorted(await asyncio.gather(*tasks)) == ["", "", "CHANNEL_FULL", "CHANNEL_FULL"]
    held = await conn.fetchval(
        "SELECT count(*) FROM voice_states WHERE channel_id = $1", UUID(made["id"])
    )
    assert held == 2


async def test_friend_requests_sent_both_ways_at_once_make_one_friendship(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """ann and ben ask each other at once: one request is made and the other accepts
    it (never two pending requests, two friendships or two direct conversations)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    url = "/api/users/@me/friend-requests"
    async with pool.acquire() as holder, holder.transaction():
        await locks_q.lock_transaction(holder, key=locks_q.pair_key(ann.id, ben.id))
        tasks = [
            asyncio.ensure_future(client.post(url, headers=a.headers, json={"username": b}))
            for a, b in ((ann, "ben"), (ben, "ann"))
        ]
        await waiting_or_done(pool, 2, asyncio.gather(*tasks))
    answers = await asyncio.gather(*tasks)
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert sorted(a.json()["status"] for a in answers) == ["accepted", "pending"]
    rows = await conn.fetch("SELECT status FROM friend_requests")
    assert [r["status"] for r in rows] == ["accepted"]
    assert await conn.fetchval("SELECT count(*) FROM friendships") == 1
    assert await conn.fetchval("SELECT count(*) FROM channels WHERE kind = 'direct'") == 1
