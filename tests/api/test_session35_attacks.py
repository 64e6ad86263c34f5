"""An outside attack on the areas attacked least (invites, pins, reactions, read
receipts, voice moderation, Braid's Parents, history's around=): each FINDING failed on
the code it attacked and holds since its mend; the HOLDS record what was tried and held.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.factories import (
    AppWith,
    MakeUser,
    community,
    direct,
    lock_waiters,
    override,
    pair,
    say,
    server_channel,
)
from xfchat.db.queries.locks import advisory_key
from xfchat.domain.permissions import Permission as P

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
            "SELECT s.kind, e.data->>'last_read_seq' AS seq FROM events e"
            " JOIN event_streams s ON s.id = e.stream_id"
            " WHERE e.type = 'read_state.updated' AND e.data->>'user_id' = $1"
            " ORDER BY s.kind, e.pos",
            str(ann.id),
        )
    # (the move back, to 1, is ann's alone: a read receipt never goes back)
    assert [(r["kind"], r["seq"]) for r in told] == [
        ("channel", "1"),
        ("channel", "2"),
        ("user", "1"),
    ]


# ------------------------------------------- FINDING: privacy toggled without a count


async def test_privacy_changes_are_counted_and_one_that_changes_nothing_is_not(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Each change of whom one takes direct messages from writes every direct
    conversation with a stranger (its access version, its row locked against the sends
    in it, up to 1,000 of them, their calls ended), and told the user's other sessions
    even when it changed nothing; counted only in the API's 600 a minute, one account
    with many strangers' conversations kept their rows written and locked. Now a change
    counts in `profile` (XFCHAT_RATE_PROFILE_USER; 2 here), as a profile change does,
    and one that changes nothing answers as it stands, tells no one and is not counted."""
    client = await app_with(rate_profile_user="2/600")
    mal = await make_user("mal")
    strangers = [await make_user(f"s{n}") for n in range(3)]
    for other in strangers:
        await direct(client, mal, other)
    url = "/api/users/@me/privacy"
    async with pool.acquire() as conn:
        versions = "SELECT sum(access_version) FROM channels WHERE kind = 'direct'"
        before = await conn.fetchval(versions)
    answers = [
        await client.put(url, headers=mal.headers, json={"direct_messages": policy})
        for policy in ("everyone", "friends", "friends", "everyone", "friends")
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429], [a.text for a in answers]
    assert answers[-1].json()["bucket"] == "profile" and "Retry-After" in answers[-1].headers
    got = await client.get(url, headers=mal.headers)
    assert got.json() == {"direct_messages": "everyone"}
    async with pool.acquire() as conn:
        assert await conn.fetchval(versions) - before == 2 * len(strangers)
        told = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'privacy.updated'")
    assert told == 2


# ------------------------------------------------ FINDING: joining and leaving, unbounded


async def test_joins_by_invite_are_counted_per_user(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Each join by invite tells every member (`member.joined`) and writes the server as
    the newcomer sees it (its channels, roles, overrides, read states and voice states)
    to the event log as their `server.joined`; leaving tells every member again. Counted
    only in the API's 600 a minute, one account joining and leaving a big server kept
    its members' pages redrawing and wrote its whole view some 300 times a minute. Now in
    `joins` per user (XFCHAT_RATE_JOINS_USER; 2 here), refused ones and repeats included:
    past it, 429 and nothing written."""
    client = await app_with(rate_joins_user="2/600")
    ann, mal = await make_user("ann"), await make_user("mal")
    srv = await community(client, ann)
    join, leave = f"/api/invites/{srv.invite}", srv.url("/members/@me")
    steps = [
        (await client.post(join, headers=mal.headers)).status_code,
        (await client.delete(leave, headers=mal.headers)).status_code,
        (await client.post(join, headers=mal.headers)).status_code,
        (await client.delete(leave, headers=mal.headers)).status_code,
    ]
    refused = await client.post(join, headers=mal.headers)
    assert steps == [201, 204, 201, 204]
    assert refused.status_code == 429, refused.text
    assert refused.json()["bucket"] == "joins" and "Retry-After" in refused.headers
    async with pool.acquire() as conn:
        joined = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'member.joined'")
        member = await conn.fetchval(
            "SELECT count(*) FROM server_members WHERE user_id = $1", mal.id
        )
    assert (joined, member) == (2, 0)
    other = await make_user("ben")  # (per user)
    assert (await client.post(join, headers=other.headers)).status_code == 201


# ------------------------------------------------------------------------------- HOLDS


async def test_a_hidden_channels_message_named_through_a_visible_channel_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """HOLDS: a message of a channel mal cannot see, named through one she can (a
    reaction, its reactors, a pin by a moderator of the visible one) or as a Braid
    resume point (Parents) there, is the plain not-found: nothing tells it exists."""
    ann, mal = await make_user("ann"), await make_user("mal")
    srv = await community(client, ann, mal)
    secret = await server_channel(client, srv, ann, "secret")
    hidden = await override(
        client, ann, secret["id"], "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL)
    )
    assert hidden.status_code == 200, hidden.text
    said = await say(client, ann, secret["id"], "not for mal")
    base = f"/api/channels/{srv.general}"
    for answer in (
        await client.put(f"{base}/messages/{said['id']}/reactions/x/@me", headers=mal.headers),
        await client.get(f"{base}/messages/{said['id']}/reactions/x", headers=mal.headers),
        await client.put(f"{base}/pins/{said['id']}", headers=ann.headers),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "MESSAGE_NOT_FOUND"
    resumed = await client.get(
        f"{base}/messages",
        headers={**mal.headers, "Subscribe": "true", "Parents": f'"{said["id"]}"'},
    )
    assert resumed.status_code == 410, resumed.text
    assert resumed.json()["code"] == "VERSION_UNKNOWN"


async def test_two_privacy_changes_at_once_tell_the_change_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Two requests naming the same new choice at once both passed the check outside
    any transaction (the choice was not yet theirs) and each told the user's sessions
    `privacy.updated`, the second for a choice it found made already under the lock;
    now the one that finds it made tells no one, as one sent after it would not."""
    mal = await make_user("mal")
    url = "/api/users/@me/privacy"
    key = advisory_key(b"dm-policy", mal.id)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock($1)", key)
        racing = [
            asyncio.ensure_future(
                client.put(url, headers=mal.headers, json={"direct_messages": "friends"})
            )
            for _ in range(2)
        ]
        await lock_waiters(pool, at_least=2)
    answers = await asyncio.gather(*racing)
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json() for a in answers] == [{"direct_messages": "friends"}] * 2
    async with pool.acquire() as conn:
        told = await conn.fetchval(
            "SELECT count(*) FROM events"
            " WHERE type = 'privacy.updated' AND data->>'direct_messages' = 'friends'"
        )
    assert told == 1
