"""A ban that deletes the banned user's recent messages (`delete_message_seconds`, as
Discord's): only theirs, only in the server, only within the window, at most
MAX_BAN_DELETED_MESSAGES newest first, in the ban's own transaction, and nothing when
the ban is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests import factories
from tests.factories import Community, MakeUser, TestUser, community, role
from tests.support import until_one_waits_for_a_lock
from xfchat.db.queries import event_log as event_log_q
from xfchat.domain import members
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


async def _history(client: httpx.AsyncClient, who: TestUser, channel: str) -> dict[str, Any]:
    got = await client.get(f"/api/channels/{channel}/messages", headers=who.headers)
    assert got.status_code == 200, got.text
    return {m["id"]: m for m in got.json()}


async def _deleted_in(pool: asyncpg.Pool, channel: str) -> list[str]:
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(channel))
    return [d["id"] for t, d in events if t == "message.deleted"]


async def _backdate(pool: asyncpg.Pool, message_id: str, seconds: int) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE messages SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
            uuid.UUID(message_id),
            float(seconds),
        )


async def _audited(client: httpx.AsyncClient, srv: Community, owner: TestUser) -> Any:
    got = await client.get(srv.url("/audit-log?action=member.banned"), headers=owner.headers)
    return got.json()


async def test_a_ban_deletes_only_the_users_messages_in_the_server_within_the_window(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, ben, cid = [await make_user(n) for n in ("ann", "mod", "ben", "cid")]
    srv = await community(client, ann, mod, ben, cid)
    await role(client, srv, ann, "mods", int(P.BAN_MEMBERS), mod)  # (no MANAGE_MESSAGES)
    other = str((await factories.server_channel(client, srv, ann, "other"))["id"])
    recent = (await factories.say(client, ben, srv.general, "spam 1"))["id"]
    elsewhere = (await factories.say(client, ben, other, "spam 2"))["id"]
    old = (await factories.say(client, ben, srv.general, "last week's"))["id"]
    await _backdate(pool, old, 7200)
    gone = (await factories.say(client, ben, srv.general, "took it back"))["id"]
    took_back = await client.delete(
        f"/api/channels/{srv.general}/messages/{gone}", headers=ben.headers
    )
    assert took_back.status_code == 204
    theirs = (await factories.say(client, cid, srv.general, "cid's"))["id"]
    own = await community(client, ben, name="ben's")
    foreign = (await factories.say(client, ben, own.general, "in another server"))["id"]
    dm = str((await factories.group(client, ben, mod, name="g"))["id"])
    private = (await factories.say(client, ben, dm, "in a conversation"))["id"]

    banned = await client.put(
        srv.url(f"/bans/{ben.id}"),
        headers=mod.headers,
        json={"reason": "raid", "delete_message_seconds": 3600},
    )
    assert banned.status_code == 204, banned.text

    general = await _history(client, ann, srv.general)
    assert general[recent]["deleted"] and general[recent]["content"] == ""
    assert general[old]["content"] == "last week's" and not general[old]["deleted"]
    assert general[theirs]["content"] == "cid's"
    assert (await _history(client, ann, other))[elsewhere]["deleted"]
    assert (await _history(client, ben, own.general))[foreign]["content"] == "in another server"
    assert (await _history(client, ben, dm))[private]["content"] == "in a conversation"
    # A message.deleted each, in its channel's stream (once for the one ben took back),
    # and the sent text scrubbed from the log, as a moderator's deletion does.
    assert await _deleted_in(pool, srv.general) == [gone, recent]
    assert await _deleted_in(pool, other) == [elsewhere]
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
        by = await conn.fetchval("SELECT deleted_by FROM messages WHERE id = $1", uuid.UUID(recent))
    assert [d["content"] for t, d in events if t == "message.created" and d["id"] == recent] == [""]
    assert by == mod.id
    (entry,) = await _audited(client, srv, ann)
    assert entry["actor_id"] == str(mod.id) and entry["target_id"] == str(ben.id)
    assert entry["reason"] == "raid"
    assert entry["changes"] == {
        "delete_message_seconds": 3600,
        "deleted_messages": 2,
        "deleted_in": {srv.general: 1, other: 1},
    }


async def test_a_bans_deletion_takes_at_most_the_bound_newest_first(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    sent = [(await factories.say(client, ben, srv.general, f"m{i}"))["id"] for i in range(4)]
    for age, message_id in zip((40, 30, 20, 10), sent, strict=True):  # oldest first
        await _backdate(pool, message_id, age)
    async with pool.acquire() as conn:
        deleted = await members.ban_member(
            conn, ann.actor, uuid.UUID(srv.id), ben.id, None, 600, max_deleted=2
        )
    assert deleted == 2
    history = await _history(client, ann, srv.general)
    assert [history[m]["deleted"] for m in sent] == [False, False, True, True]
    assert await _deleted_in(pool, srv.general) == sent[2:]
    (entry,) = await _audited(client, srv, ann)
    assert entry["changes"] == {
        "delete_message_seconds": 600,
        "deleted_messages": 2,
        "deleted_in": {srv.general: 2},
    }
    assert members.MAX_BAN_DELETED_MESSAGES == 1000  # (as the README says)


async def test_delete_message_seconds_out_of_range_or_not_an_integer_is_400(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    kept = (await factories.say(client, ben, srv.general, "still here"))["id"]
    for bad in (-1, 604801, "60", 60.5, True, None, [60]):
        refused = await client.put(
            srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={"delete_message_seconds": bad}
        )
        assert refused.status_code == 400, (bad, refused.text)
        body = refused.json()
        assert body["code"] == "VALIDATION_ERROR" and body["message"], bad
        assert body["field"] == "delete_message_seconds", bad
    assert (await client.get(srv.url(), headers=ben.headers)).status_code == 200  # not banned
    assert (await _history(client, ann, srv.general))[kept]["content"] == "still here"
    assert await _deleted_in(pool, srv.general) == []
    # The bounds themselves are allowed: 7 days deletes, 0 (the default) does not.
    week = await client.put(
        srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={"delete_message_seconds": 604800}
    )
    assert week.status_code == 204
    assert await _deleted_in(pool, srv.general) == [kept]
    (entry,) = await _audited(client, srv, ann)
    assert entry["changes"] == {
        "delete_message_seconds": 604800,
        "deleted_messages": 1,
        "deleted_in": {srv.general: 1},
    }


async def test_a_refused_ban_deletes_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, peer, ben = [await make_user(n) for n in ("ann", "mod", "peer", "ben")]
    srv = await community(client, ann, mod, peer, ben)
    await role(client, srv, ann, "mods", int(P.BAN_MEMBERS), mod, peer)
    said = {
        who.username: (await factories.say(client, who, srv.general, f"by {who.username}"))["id"]
        for who in (ann, mod, peer, ben)
    }
    body = {"delete_message_seconds": 3600}
    for actor, target, code in (
        (ben, peer, "MISSING_PERMISSIONS"),  # no BAN_MEMBERS
        (mod, ann, "ROLE_HIERARCHY"),  # the owner
        (mod, peer, "ROLE_HIERARCHY"),  # the same highest role
        (mod, mod, "CANNOT_BAN_SELF"),
    ):
        refused = await client.put(srv.url(f"/bans/{target.id}"), headers=actor.headers, json=body)
        assert refused.json()["code"] == code, (actor.username, target.username, refused.text)
    history = await _history(client, ann, srv.general)
    assert all(not history[m]["deleted"] for m in said.values())
    assert await _deleted_in(pool, srv.general) == []
    assert await _audited(client, srv, ann) == []
    # The same request, allowed, deletes only the banned user's.
    done = await client.put(srv.url(f"/bans/{ben.id}"), headers=mod.headers, json=body)
    assert done.status_code == 204
    assert await _deleted_in(pool, srv.general) == [said["ben"]]


async def test_a_bans_deletion_takes_the_channels_streams_in_the_logs_lock_order(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: a member's ban emitted `channel.updated` to a channel where the member had an
    override (remove_member), then, deleting their messages, took a lower channel's
    stream: against the log's lock order (domain/events.py). A writer that takes the two
    streams in that order (as `user.updated` to a user's shared channels does in one
    statement; split here on a connection of its own, so the interleaving is certain)
    deadlocked with it. Now the ban waits for the first stream, holding neither."""
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.BAN_MEMBERS), mod)
    made = [str((await factories.server_channel(client, srv, ann, n))["id"]) for n in "ab"]
    low, high = sorted(made, key=uuid.UUID)
    await factories.say(client, ben, low, "spam")
    given = await factories.override(
        client, ann, high, "member", ben.id, allow=int(P.ADD_REACTIONS)
    )
    assert given.status_code == 200, given.text
    other = await asyncpg.connect(settings.database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await event_log_q.lock_streams(other, kinds=["channel"], entity_ids=[uuid.UUID(low)])
        banning = asyncio.ensure_future(
            client.put(
                srv.url(f"/bans/{ben.id}"),
                headers=mod.headers,
                json={"delete_message_seconds": 3600},
            )
        )
        await until_one_waits_for_a_lock(other, banning)
        assert not banning.done(), (await banning).text
        # (in the lock order: raised DeadlockDetectedError, or the ban answered 503)
        await event_log_q.lock_streams(other, kinds=["channel"], entity_ids=[uuid.UUID(high)])
        await tx.commit()
        banned = await banning
    finally:
        await other.close()
    assert banned.status_code == 204, banned.text
    kept = await _history(client, ann, low)
    assert kept and all(m["deleted"] for m in kept.values()), kept


async def test_two_bans_at_once_delete_each_message_once_and_leave_nothing_to_find(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Held: the server's lock orders them; the second finds nothing live to delete.
    Search finds none of the deleted text, and the log keeps none of it."""
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.BAN_MEMBERS), mod)
    for i in range(3):
        await factories.say(client, ben, srv.general, f"zebracorn {i}")
    ban = {"delete_message_seconds": 600}
    answers = await asyncio.gather(
        *(
            client.put(srv.url(f"/bans/{ben.id}"), headers=who.headers, json=ban)
            for who in (ann, mod)
        )
    )
    assert [a.status_code for a in answers] == [204, 204], [a.text for a in answers]
    entries = await _audited(client, srv, ann)
    assert sorted(e["changes"]["deleted_messages"] for e in entries) == [0, 3], entries
    found = await client.get("/api/search", params={"q": "zebracorn"}, headers=ann.headers)
    assert found.status_code == 200 and found.json()["results"] == [], found.text
    assert "zebracorn" not in str(await _history(client, ann, srv.general))


async def test_a_ban_racing_the_users_send_leaves_none_of_theirs_live(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Held: a send that lands before the ban is deleted by it; one after is refused."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    url = f"/api/channels/{srv.general}/messages"
    for i in range(4):
        sending = client.post(url, headers=ben.headers, json={"content": f"last word {i}"})
        banning = client.put(
            srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={"delete_message_seconds": 60}
        )
        sent, banned = await asyncio.gather(sending, banning)
        assert banned.status_code == 204, banned.text
        assert sent.status_code in (201, 403, 404), sent.text
        assert not [
            m
            for m in (await _history(client, ann, srv.general)).values()
            if m["author"]["id"] == str(ben.id) and not m["deleted"]
        ]
        unbanned = await client.delete(srv.url(f"/bans/{ben.id}"), headers=ann.headers)
        assert unbanned.status_code == 204, unbanned.text
        back = await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)
        assert back.status_code == 201, back.text


async def test_a_huge_or_malformed_ban_body_is_a_400_not_a_500(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    url = srv.url(f"/bans/{ben.id}")
    for body in ({"delete_message_seconds": 10**40}, {"delete_message_seconds": -(10**40)}):
        answer = await client.put(url, headers=ann.headers, json=body)
        assert answer.status_code == 400, answer.text
    for raw in (b"[1]", b'"x"', b"{", b"1e999"):
        answer = await client.put(
            url, headers={**ann.headers, "content-type": "application/json"}, content=raw
        )
        assert answer.status_code in (400, 422), (raw, answer.text)
    members_now = await client.get(srv.url("/members"), headers=ann.headers)
    assert str(ben.id) in members_now.text
