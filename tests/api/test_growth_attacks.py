"""Tables a hostile account can grow without bound while `xfchat serve` runs for months:
each test counts the rows one account's requests leave behind."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import AppWith, MakeUser, TestUser, community
from tests.openapi_check import check_responses
from xfchat.domain import conversations, friends

PASSWORD = "growth attack passphrase 7"


async def test_a_member_cannot_fill_a_servers_audit_log_with_invites(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Any member may make invites (CREATE_INVITE is @everyone's) and revoke their own,
    and each one made and each revoked is an audit-log entry of the server, kept for
    ever by default. main counted them only in the API's 600 a minute: a member with
    no moderation right wrote two entries every two requests, 864,000 a day (an invite
    of one second expires at once and leaves room for the next), burying the
    moderators' own. Now they count in `invites` (30 in 10 minutes)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    statuses = []
    for _ in range(40):
        made = await client.post(srv.url("/invites"), headers=ben.headers, json={"max_uses": 1})
        statuses.append(made.status_code)
        if made.status_code == 201:
            gone = await client.delete(
                srv.url(f"/invites/{made.json()['code']}"), headers=ben.headers
            )
            assert gone.status_code == 204, gone.text
        else:
            assert made.status_code == 429 and made.json()["code"] == "RATE_LIMITED", made.text
    async with pool.acquire() as conn:
        written = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE server_id = $1 AND actor_id = $2",
            UUID(srv.id),
            ben.id,
        )
    assert statuses[:30] == [201] * 30
    assert written <= 2 * 30, f"{written} audit-log entries from one member in a minute"


async def _count_windows(pool: asyncpg.Pool, bucket: str) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM rate_limits WHERE bucket LIKE $1", f"{bucket}:%"
            )
        )


def _from(client: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
    """A client of the same app whose requests come from `ip`."""
    app = client._transport.app  # type: ignore[attr-defined]
    return check_responses(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test"
        )
    )


async def test_a_network_past_its_sign_in_limits_opens_no_window_for_each_address_in_it(
    app_with: AppWith, pool: asyncpg.Pool
) -> None:
    """An IPv6 client counts in its /64 and in its /48, at 16 times the rule. main counted
    every request in both, in one statement, refused or not: once a /48 was past its
    rule, each of its 65,536 /64s still opened a window of its own in `rate_limits`,
    a row per request from a new one, kept for the window (an hour for registrations),
    so one site (a tunnel broker gives anyone a /48) grew the table by its request rate
    times that. Now the /48 is counted first, and a request it refuses opens nothing
    more, as the limits kept in memory do (domain/local_limits.py)."""
    first = await app_with("2001:db8:7::1", rate_login_ip="2/300", rate_register_ip="2/3600")
    made = 0

    def body(route: str) -> dict[str, str]:
        """Counted, and cheap where it can be: an empty login is counted, then 400; a
        registration is counted only once its body is well-formed (and kept if made)."""
        nonlocal made
        if route.endswith("login"):
            return {}
        made += 1
        return {"username": f"grower{made}", "email": f"g{made}@example.com", "password": PASSWORD}

    for route, bucket in (
        ("/api/auth/login", "auth.login"),
        ("/api/auth/register", "auth.register"),
    ):
        # The /48 takes 32: two from each of 16 /64s.
        for i in range(16):
            for _ in range(2):
                async with _from(first, f"2001:db8:7:{i:x}::1") as one:
                    answer = await one.post(route, json=body(route))
                assert answer.status_code in (400, 201), answer.text
        before = await _count_windows(pool, bucket)
        for i in range(16, 216):  # 200 more /64s, each refused by the /48
            async with _from(first, f"2001:db8:7:{i:x}::1") as one:
                answer = await one.post(route, json=body(route))
            assert answer.status_code == 429, answer.text
        assert await _count_windows(pool, bucket) - before == 0, route


async def test_strangers_direct_conversations_stop_taking_places_once_blocked(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: anyone may open a direct conversation with a person who takes direct
    messages from everyone (the default), and each took one of that person's places
    (1,000), with no leaving one: strangers' accounts filled them, and the person could
    then start no conversation and be added to no group. Blocking them did not help.
    Now a direct conversation with someone you blocked takes none of your places (theirs
    it still takes: blocking whom they wrote to frees them nothing)."""
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS_PER_USER", 2)
    zoe, friend = await make_user("zoe"), await make_user("friend")
    strangers = [await make_user(f"str{i}") for i in range(2)]
    for stranger in strangers:
        await factories.direct(client, stranger, zoe)
    await factories.befriend(friend, zoe)

    async def zoe_opens(other: TestUser) -> httpx.Response:
        return await client.post(
            "/api/conversations",
            headers=zoe.headers,
            json={"kind": "direct", "user_id": str(other.id)},
        )

    refused = await zoe_opens(friend)
    assert refused.status_code == 403 and refused.json()["code"] == "TOO_MANY_CONVERSATIONS"
    # A stranger blocking zoe frees nothing of hers, nor of theirs.
    blocked = await client.put(f"/api/users/@me/blocks/{zoe.id}", headers=strangers[0].headers)
    assert blocked.status_code == 204
    assert (await zoe_opens(friend)).status_code == 403
    for stranger in strangers:
        blocked = await client.put(f"/api/users/@me/blocks/{stranger.id}", headers=zoe.headers)
        assert blocked.status_code == 204
    opened = await zoe_opens(friend)
    assert opened.status_code in (200, 201), opened.text
    # The stranger who blocked zoe still has her conversation in their count.
    busy = await make_user("busy")
    await factories.direct(client, strangers[0], busy)  # their second place
    third = await client.post(
        "/api/conversations",
        headers=strangers[0].headers,
        json={"kind": "direct", "user_id": str(friend.id)},
    )
    assert third.status_code == 403 and third.json()["code"] == "TOO_MANY_CONVERSATIONS"


async def test_blocking_openers_holds_a_person_to_their_places_and_their_blocks(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The places a block frees stay bounded: someone who lets accounts of their own
    open direct conversations with them, blocks each opener, and unblocks them all to
    block others, takes part in at most MAX_CONVERSATIONS_PER_USER + MAX_BLOCKS
    conversations (each uncounted one needs a block standing)."""
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS_PER_USER", 2)
    monkeypatch.setattr(friends, "MAX_BLOCKS", 2)
    zoe = await make_user("zoe")
    blocked: list[TestUser] = []
    openers: list[TestUser] = []
    for i in range(10):
        opener = await make_user(f"own{i}")
        opened = await client.post(
            "/api/conversations",
            headers=opener.headers,
            json={"kind": "direct", "user_id": str(zoe.id)},
        )
        if opened.status_code == 201:
            openers.append(opener)
        if len(blocked) == 2:  # at her blocks' cap: unblock all, block two others
            for who in blocked:
                gone = await client.delete(f"/api/users/@me/blocks/{who.id}", headers=zoe.headers)
                assert gone.status_code == 204
            blocked = []
        for who in reversed(openers):
            if len(blocked) < 2 and who not in blocked:
                made = await client.put(f"/api/users/@me/blocks/{who.id}", headers=zoe.headers)
                assert made.status_code == 204, made.text
                blocked.append(who)
    rows = await conn.fetchval(
        "SELECT count(*) FROM conversation_participants WHERE user_id = $1", zoe.id
    )
    assert len(openers) >= 3 and rows <= 2 + 2, (len(openers), rows)


async def test_edits_are_counted_per_user_so_the_event_log_grows_within_a_bound(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Each edit writes the whole text (up to 4,000 characters) to the event log, kept
    for XFCHAT_EVENT_RETENTION_DAYS, and to the edit history; edits counted only in the
    API's 600 a minute let one account write 2.4 MB a minute into the log (the retention
    attack found it). Now in `edits` per user (XFCHAT_RATE_EDITS_USER, 60 a minute; 3
    here): past it, 429 and nothing written."""
    client = await app_with(rate_edits_user="3/60")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    said = await factories.say(client, ann, srv.general, "v0")
    url = f"/api/channels/{srv.general}/messages/{said['id']}"
    answers = [
        await client.patch(url, headers=ann.headers, json={"content": "x" * 3999 + str(n)})
        for n in range(5)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert refused.json()["code"] == "RATE_LIMITED" and refused.json()["bucket"] == "edits"
    assert 0 < float(refused.headers["Retry-After"]) <= 60
    async with pool.acquire() as conn:
        updates = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'message.updated' AND data ->> 'id' = $1",
            said["id"],
        )
        kept = await conn.fetchval(
            "SELECT count(*) FROM message_edits WHERE message_id = $1", UUID(said["id"])
        )
    assert updates == 3 and kept == 3, (updates, kept)


async def test_group_changes_are_counted_per_user_so_the_event_log_grows_within_a_bound(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Starting a group writes it, with every participant's profile (about 2.4 KB each
    with a long avatar URL), once for each participant; a rename or an added person
    writes it again. Counted only in the API's 600 a minute, one account with 24
    friends wrote 31 MB of event JSON with 20 starts and 40 renames in a few seconds
    (renames to the same name told everyone too). Now in `groups` per user
    (XFCHAT_RATE_GROUPS_USER, 10 in 10 minutes; 4 here): past it, 429 and nothing
    written; a rename to the name the group has tells no one."""
    client = await app_with(rate_groups_user="4/600")
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    await factories.befriend(ann, ben, cat)
    start = {"kind": "group", "name": "crew", "participant_ids": [str(ben.id)]}
    made = await client.post("/api/conversations", headers=ann.headers, json=start)
    assert made.status_code == 201, made.text
    url = f"/api/conversations/{made.json()['id']}"
    same = await client.patch(url, headers=ann.headers, json={"name": "crew"})
    assert same.status_code == 200 and same.json()["name"] == "crew"
    renamed = await client.patch(url, headers=ann.headers, json={"name": "crew 2"})
    added = await client.put(f"{url}/participants/{cat.id}", headers=ann.headers)
    assert [renamed.status_code, added.status_code] == [200, 200], (renamed.text, added.text)
    refused = [
        await client.patch(url, headers=ann.headers, json={"name": "crew 3"}),
        await client.put(f"{url}/participants/{cat.id}", headers=ann.headers),
        await client.post("/api/conversations", headers=ann.headers, json=start),
    ]
    assert [r.status_code for r in refused] == [429, 429, 429], [r.text for r in refused]
    assert {r.json()["bucket"] for r in refused} == {"groups"}
    assert all(r.json()["code"] == "RATE_LIMITED" for r in refused)
    # Another participant's renames are theirs to count.
    assert (await client.patch(url, headers=ben.headers, json={"name": "b"})).status_code == 200
    # A direct conversation is not a group change.
    direct = {"kind": "direct", "user_id": str(cat.id)}
    assert (await client.post("/api/conversations", headers=ann.headers, json=direct)).is_success
    async with pool.acquire() as conn:
        counts = dict(
            await conn.fetch(
                "SELECT type, count(*) FROM events WHERE type IN ('conversation.created',"
                " 'conversation.updated', 'conversation.added') GROUP BY type"
            )
        )
        groups = await conn.fetchval("SELECT count(*) FROM channels WHERE kind = 'group'")
    # One start (two participants), ann's rename and ben's, one newcomer; and the direct
    # conversation's start for its two.
    assert counts == {
        "conversation.created": 4,
        "conversation.updated": 2,
        "conversation.added": 1,
    }, counts
    assert groups == 1
