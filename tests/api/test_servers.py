"""Servers, invites and members through the API: success, 400 for bad input, 403 for a
visible resource without the permission, 404 for an invisible one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests import factories
from tests.factories import AppWith, Community, MakeUser, TestUser, community, role
from xfchat.domain.permissions import Permission as P


async def test_create_get_list_update_and_delete_a_server(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben, eve = await make_user("ann"), await make_user("ben"), await make_user("eve")
    made = await client.post(
        "/api/servers", headers=ann.headers, json={"name": " Gaming Squad ", "description": "gg"}
    )
    assert made.status_code == 201
    body = made.json()
    assert body["name"] == "Gaming Squad" and body["owner_id"] == str(ann.id)
    assert [c["name"] for c in body["channels"]] == ["general"]
    assert [r["name"] for r in body["roles"]] == ["@everyone"]
    assert body["member"]["user"]["username"] == "ann" and body["member_count"] == 1
    sid = body["id"]
    bad = await client.post("/api/servers", headers=ann.headers, json={"name": "  "})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_SERVER_NAME"

    mine = (await client.get("/api/users/@me/servers", headers=ann.headers)).json()
    assert [s["id"] for s in mine] == [sid]
    assert (await client.get(f"/api/servers/{sid}", headers=eve.headers)).status_code == 404
    assert (await client.get(f"/api/servers/{uuid.uuid4()}", headers=ann.headers)).json()[
        "code"
    ] == "SERVER_NOT_FOUND"

    srv = factories.Community(sid, "", body["channels"][0]["id"], "")
    invite = (
        await client.post(srv.url("/invites"), headers=ann.headers, json={"max_uses": 5})
    ).json()
    assert (
        await client.post(f"/api/invites/{invite['code']}", headers=ben.headers)
    ).status_code == 201
    renamed = await client.patch(
        srv.url(), headers=ann.headers, json={"name": "Squad", "description": None}
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Squad" and renamed.json()["description"] is None
    denied = await client.patch(srv.url(), headers=ben.headers, json={"name": "mine now"})
    assert denied.status_code == 403 and denied.json()["code"] == "MISSING_PERMISSIONS"
    assert (
        await client.patch(srv.url(), headers=eve.headers, json={"name": "x"})
    ).status_code == 404

    not_owner = await client.delete(srv.url(), headers=ben.headers)
    assert not_owner.status_code == 403 and not_owner.json()["code"] == "NOT_SERVER_OWNER"
    await factories.say(client, ben, srv.general, "hello")
    assert (await client.delete(srv.url(), headers=ann.headers)).status_code == 204
    assert (await client.get(srv.url(), headers=ben.headers)).status_code == 404
    async with pool.acquire() as conn:  # everything under it went with it
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM channels WHERE server_id = $1", uuid.UUID(sid)
            )
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM invites") == 0


async def test_ownership_is_handed_over_to_a_member(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, eve = await make_user("ann"), await make_user("ben"), await make_user("eve")
    srv = await community(client, ann, ben)
    to_stranger = await client.post(
        srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(eve.id)}
    )
    assert to_stranger.status_code == 404 and to_stranger.json()["code"] == "MEMBER_NOT_FOUND"
    by_member = await client.post(
        srv.url("/transfer"), headers=ben.headers, json={"owner_id": str(ben.id)}
    )
    assert by_member.status_code == 403 and by_member.json()["code"] == "NOT_SERVER_OWNER"
    moved = await client.post(
        srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)}
    )
    assert moved.status_code == 200 and moved.json()["owner_id"] == str(ben.id)
    leave = await client.delete(srv.url("/members/@me"), headers=ben.headers)
    assert leave.status_code == 400 and leave.json()["code"] == "OWNER_CANNOT_LEAVE"
    assert (await client.delete(srv.url("/members/@me"), headers=ann.headers)).status_code == 204


async def test_invites_preview_join_max_uses_and_expiry(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    srv = await community(client, ann)
    once = (
        await client.post(srv.url("/invites"), headers=ann.headers, json={"max_uses": 1})
    ).json()
    preview = await client.get(f"/api/invites/{once['code']}", headers=ben.headers)
    assert preview.status_code == 200
    assert (
        preview.json()["server"]["name"] == "srv" and preview.json()["server"]["member_count"] == 1
    )
    assert (
        await client.post(f"/api/invites/{once['code']}", headers=ben.headers)
    ).status_code == 201
    again = await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)
    assert again.status_code == 200  # already a member: nothing used up
    used_up = await client.post(f"/api/invites/{once['code']}", headers=cid.headers)
    assert used_up.status_code == 404 and used_up.json()["code"] == "INVITE_NOT_FOUND"

    short = (
        await client.post(srv.url("/invites"), headers=ann.headers, json={"max_age_s": 60})
    ).json()
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE invites SET expires_at = now() - interval '1 s' WHERE code = $1", short["code"]
        )
    expired = await client.post(f"/api/invites/{short['code']}", headers=dan.headers)
    assert expired.status_code == 404
    assert (
        await client.get(f"/api/invites/{short['code']}", headers=dan.headers)
    ).status_code == 404

    for body in ({"max_uses": 0}, {"max_uses": 1001}, {"max_age_s": 0}, {"max_age_s": 10**9}):
        bad = await client.post(srv.url("/invites"), headers=ann.headers, json=body)
        assert bad.status_code == 400 and bad.json()["code"] == "INVALID_INVITE"
    assert (await client.get("/api/invites/no", headers=ben.headers)).status_code == 400

    listed = await client.get(srv.url("/invites"), headers=ben.headers)
    assert listed.status_code == 403  # MANAGE_SERVER
    other = (await client.post(srv.url("/invites"), headers=ann.headers, json={})).json()
    codes = [i["code"] for i in (await client.get(srv.url("/invites"), headers=ann.headers)).json()]
    # Used-up and expired invites are gone; the live ones are listed.
    assert set(codes) == {srv.invite, other["code"]}
    mine = (await client.post(srv.url("/invites"), headers=ben.headers, json={})).json()
    url = srv.url(f"/invites/{other['code']}")
    assert (await client.delete(url, headers=ben.headers)).status_code == 403
    assert (
        await client.delete(srv.url(f"/invites/{mine['code']}"), headers=ben.headers)
    ).status_code == 204
    assert (await client.delete(url, headers=ann.headers)).status_code == 204
    assert (await client.post(srv.url("/invites"), headers=dan.headers, json={})).status_code == 404


async def test_an_expired_or_used_up_invite_is_gone_from_the_list_at_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: listed (with its uses) until the next invite made deleted it."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann)
    once = (
        await client.post(srv.url("/invites"), headers=ann.headers, json={"max_uses": 1})
    ).json()
    short = (
        await client.post(srv.url("/invites"), headers=ann.headers, json={"max_age_s": 60})
    ).json()
    assert (
        await client.post(f"/api/invites/{once['code']}", headers=ben.headers)
    ).status_code == 201
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE invites SET expires_at = now() - interval '1 s' WHERE code = $1", short["code"]
        )
    listed = await client.get(srv.url("/invites"), headers=ann.headers)
    assert [i["code"] for i in listed.json()] == [srv.invite]
    for code in (once["code"], short["code"]):  # gone for every route alike
        assert (await client.get(f"/api/invites/{code}", headers=ann.headers)).status_code == 404
        revoked = await client.delete(srv.url(f"/invites/{code}"), headers=ann.headers)
        assert revoked.status_code == 404 and revoked.json()["code"] == "INVITE_NOT_FOUND"


async def test_members_page_through_and_nicknames(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    people = [await make_user(f"m{i}") for i in range(5)]
    ann = people[0]
    srv = await community(client, *people)
    first = (await client.get(srv.url("/members?limit=2"), headers=ann.headers)).json()
    rest = (
        await client.get(
            srv.url(f"/members?limit=10&after={first[-1]['user']['id']}"), headers=ann.headers
        )
    ).json()
    ids = [m["user"]["id"] for m in first + rest]
    assert ids == sorted(str(p.id) for p in people)
    assert (await client.get(srv.url("/members?limit=0"), headers=ann.headers)).status_code == 400

    me = await client.patch(
        srv.url("/members/@me"), headers=people[1].headers, json={"nickname": "Bee"}
    )
    assert me.status_code == 200 and me.json()["nickname"] == "Bee"
    other = await client.patch(
        srv.url(f"/members/{people[2].id}"), headers=people[1].headers, json={"nickname": "x"}
    )
    assert other.status_code == 403  # MANAGE_NICKNAMES
    long = await client.patch(
        srv.url("/members/@me"), headers=people[1].headers, json={"nickname": "n" * 33}
    )
    assert long.status_code == 400 and long.json()["code"] == "INVALID_NICKNAME"
    got = await client.get(srv.url(f"/members/{people[1].id}"), headers=ann.headers)
    assert got.json()["nickname"] == "Bee"
    missing = await client.get(srv.url(f"/members/{uuid.uuid4()}"), headers=ann.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "MEMBER_NOT_FOUND"


async def test_kick_and_ban_end_membership_and_a_ban_blocks_every_invite(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, mod, ben, cid = [await make_user(n) for n in ("ann", "mod", "ben", "cid")]
    srv = await community(client, ann, mod, ben, cid)
    await role(client, srv, ann, "mods", int(P.KICK_MEMBERS | P.BAN_MEMBERS), mod)
    denied = await client.delete(srv.url(f"/members/{cid.id}"), headers=ben.headers)
    assert denied.status_code == 403
    owner = await client.delete(srv.url(f"/members/{ann.id}"), headers=mod.headers)
    assert owner.status_code == 403 and owner.json()["code"] == "ROLE_HIERARCHY"
    kicked = await client.delete(
        srv.url(f"/members/{cid.id}"), headers={**mod.headers, "X-Audit-Log-Reason": "spam%20links"}
    )
    assert kicked.status_code == 204
    assert (await client.get(srv.url(), headers=cid.headers)).status_code == 404
    assert (await client.post(f"/api/invites/{srv.invite}", headers=cid.headers)).status_code == 201

    banned = await client.put(
        srv.url(f"/bans/{ben.id}"), headers=mod.headers, json={"reason": "rude"}
    )
    assert banned.status_code == 204
    assert (await client.get(srv.url(), headers=ben.headers)).status_code == 404
    fresh = (await client.post(srv.url("/invites"), headers=ann.headers, json={})).json()
    for code in (srv.invite, fresh["code"]):
        blocked = await client.post(f"/api/invites/{code}", headers=ben.headers)
        assert blocked.status_code == 403 and blocked.json()["code"] == "BANNED"
    bans = (await client.get(srv.url("/bans"), headers=mod.headers)).json()
    assert [(b["user"]["id"], b["reason"]) for b in bans] == [(str(ben.id), "rude")]
    assert (await client.get(srv.url("/bans"), headers=cid.headers)).status_code == 403
    assert (await client.delete(srv.url(f"/bans/{ben.id}"), headers=mod.headers)).status_code == 204
    assert (await client.delete(srv.url(f"/bans/{ben.id}"), headers=mod.headers)).json()[
        "code"
    ] == "BAN_NOT_FOUND"
    assert (await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)).status_code == 201

    log = (await client.get(srv.url("/audit-log?action=member.kicked"), headers=ann.headers)).json()
    assert [(e["actor_id"], e["target_id"], e["reason"]) for e in log] == [
        (str(mod.id), str(cid.id), "spam links")
    ]
    bad = await client.get(srv.url("/audit-log?action=nope"), headers=ann.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_AUDIT_ACTION"
    assert (await client.get(srv.url("/audit-log"), headers=ben.headers)).status_code == 403


async def test_a_timed_out_member_reads_but_cannot_send_or_react(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.MODERATE_MEMBERS), mod)
    said = await factories.say(client, ann, srv.general, "hi")
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    not_mod = await client.patch(
        srv.url(f"/members/{mod.id}"), headers=ben.headers, json={"timed_out_until": until}
    )
    assert not_mod.status_code == 403
    too_long = (datetime.now(UTC) + timedelta(days=29)).isoformat()
    bad = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=mod.headers, json={"timed_out_until": too_long}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_TIMEOUT"
    # A number, or digits as text, is not taken as seconds since 1970.
    for not_a_time in (int(datetime.now(UTC).timestamp()) + 600, "1800000000", True):
        odd = await client.patch(
            srv.url(f"/members/{ben.id}"), headers=mod.headers, json={"timed_out_until": not_a_time}
        )
        assert odd.status_code == 400 and odd.json()["code"] == "VALIDATION_ERROR", odd.text
    done = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=mod.headers, json={"timed_out_until": until}
    )
    assert done.status_code == 200 and done.json()["timed_out_until"] is not None
    url = f"/api/channels/{srv.general}/messages"
    sent = await client.post(url, headers=ben.headers, json={"content": "let me talk"})
    assert sent.status_code == 403 and sent.json()["code"] == "TIMED_OUT"
    react = await client.put(f"{url}/{said['id']}/reactions/👍/@me", headers=ben.headers)
    assert react.status_code == 403 and react.json()["code"] == "TIMED_OUT"
    assert (await client.get(url, headers=ben.headers)).status_code == 200
    # Leaving and rejoining is no way out: the rest of the timeout comes back.
    left = await client.delete(srv.url("/members/@me"), headers=ben.headers)
    assert left.status_code == 204
    assert (await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)).status_code == 201
    back = (await client.get(srv.url(f"/members/{ben.id}"), headers=ann.headers)).json()
    assert back["timed_out_until"] is not None
    again = await client.post(url, headers=ben.headers, json={"content": "let me talk"})
    assert again.status_code == 403 and again.json()["code"] == "TIMED_OUT"
    ended = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=mod.headers, json={"timed_out_until": None}
    )
    assert ended.json()["timed_out_until"] is None
    assert (
        await client.post(url, headers=ben.headers, json={"content": "thanks"})
    ).status_code == 201


async def test_a_timed_out_moderator_deleting_anothers_message_is_told_of_the_timeout(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: 403 NOT_MESSAGE_AUTHOR ("only the author deletes a message"), a moderator
    told they may not delete what they deleted yesterday, where pinning, kicking and
    bulk-deleting said TIMED_OUT."""
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.MANAGE_MESSAGES), mod)
    said = await factories.say(client, ben, srv.general, "spam")
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    timed = await client.patch(
        srv.url(f"/members/{mod.id}"), headers=ann.headers, json={"timed_out_until": until}
    )
    assert timed.status_code == 200
    url = f"/api/channels/{srv.general}/messages"
    one = await client.delete(f"{url}/{said['id']}", headers=mod.headers)
    assert (one.status_code, one.json()["code"]) == (403, "TIMED_OUT")
    bulk = await client.post(
        f"{url}/bulk-delete", headers=mod.headers, json={"messages": [said["id"]]}
    )
    assert (bulk.status_code, bulk.json()["code"]) == (403, "TIMED_OUT")
    # Nothing went; and without the timeout the same deletion works.
    assert (await client.get(f"{url}/{said['id']}", headers=ann.headers)).json()["deleted"] is False
    ended = await client.patch(
        srv.url(f"/members/{mod.id}"), headers=ann.headers, json={"timed_out_until": None}
    )
    assert ended.status_code == 200
    assert (await client.delete(f"{url}/{said['id']}", headers=mod.headers)).status_code == 204
    # A member who never held MANAGE_MESSAGES is still told it is not theirs.
    mine = await factories.say(client, ann, srv.general, "mine")
    not_theirs = await client.delete(f"{url}/{mine['id']}", headers=ben.headers)
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (403, "NOT_MESSAGE_AUTHOR")


async def test_counts_and_switches_take_only_json_numbers_and_booleans(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A count is a JSON integer and a switch a JSON boolean, in every request model
    (was: an invite took {"max_uses": true} as 1 use and "5" as 5; a role took
    {"hoist": "yes"}, a channel {"permissions_synced": 1}, an ack {"seq": "2"})."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    crew = await role(client, srv, ann, "crew", 0)
    cases: list[tuple[str, str, dict[str, Any], str]] = []
    for value in (True, "5", 2.0):
        cases.append(("POST", srv.url("/invites"), {"max_uses": value}, "max_uses"))
        cases.append(("POST", srv.url("/invites"), {"max_age_s": value}, "max_age_s"))
    for value in ("true", 1):
        for field in ("hoist", "mentionable"):
            cases.append(("PATCH", srv.url(f"/roles/{crew}"), {field: value}, field))
        cases.append(
            (
                "PATCH",
                f"/api/channels/{srv.general}",
                {"permissions_synced": value},
                "permissions_synced",
            )
        )
    for value in ("1", True, 1.0):
        cases.append(("PUT", f"/api/channels/{srv.general}/ack", {"seq": value}, "seq"))
    for method, url, body, field in cases:
        got = await client.request(method, url, headers=ann.headers, json=body)
        assert got.status_code == 400, (body, got.text)
        assert (got.json()["code"], got.json()["field"]) == ("VALIDATION_ERROR", field), body
    # The numbers and booleans themselves still go through.
    made = await client.post(
        srv.url("/invites"), headers=ann.headers, json={"max_uses": 5, "max_age_s": 60}
    )
    assert made.status_code == 201 and made.json()["max_uses"] == 5
    hoisted = await client.patch(
        srv.url(f"/roles/{crew}"), headers=ann.headers, json={"hoist": True}
    )
    assert hoisted.status_code == 200 and hoisted.json()["hoist"] is True


async def test_a_transfer_ends_the_new_owners_timeout(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """The owner cannot be timed out (was: a timed-out member given the server kept the
    timeout, shown on the owner, and got it back on handing the server on)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    timed = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"timed_out_until": until}
    )
    assert timed.status_code == 200 and timed.json()["timed_out_until"] is not None
    handed = await client.post(
        srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)}
    )
    assert handed.status_code == 200, handed.text
    member = await client.get(srv.url(f"/members/{ben.id}"), headers=ann.headers)
    assert member.json()["timed_out_until"] is None
    # Audited and announced as a moderator's removal of the timeout is.
    log = await client.get(srv.url("/audit-log?action=member.timed_out"), headers=ben.headers)
    assert [(e["actor_id"], e["target_id"], e["changes"]) for e in log.json()] == [
        (str(ann.id), str(ben.id), {"timed_out_until": None}),
        (str(ann.id), str(ben.id), {"timed_out_until": until}),
    ]
    async with pool.acquire() as conn:
        told = await factories.events_of(conn, "server", uuid.UUID(srv.id))
    last = [d for t, d in told if t == "member.updated" and d["user"]["id"] == str(ben.id)][-1]
    assert last["timed_out_until"] is None
    # Handing it back leaves nobody timed out.
    back = await client.post(
        srv.url("/transfer"), headers=ben.headers, json={"owner_id": str(ann.id)}
    )
    assert back.status_code == 200
    member = await client.get(srv.url(f"/members/{ben.id}"), headers=ann.headers)
    assert member.json()["timed_out_until"] is None
    sent = await factories.send_message(client, ben, srv.general, "free")
    assert sent.status_code == 201, sent.text


async def timed_out_and_run_out(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    srv: Community,
    moderator: TestUser,
    member: TestUser,
) -> str:
    """`member` timed out by `moderator` for ten minutes, then its timeout moved into the
    past (run out, as if ten minutes went by): the `timed_out_until` the PATCH sent."""
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    timed = await client.patch(
        srv.url(f"/members/{member.id}"),
        headers=moderator.headers,
        json={"timed_out_until": until},
    )
    assert timed.status_code == 200
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE server_members SET timed_out_until = now() - interval '1 minute' "
            "WHERE user_id = $1",
            member.id,
        )
    return until


async def test_a_transfer_to_a_member_whose_timeout_ran_out_audits_no_removal(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: a timeout already run out counted as one, and the transfer audited and
    announced its removal though nobody was timed out."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    until = await timed_out_and_run_out(client, pool, srv, ann, ben)
    handed = await client.post(
        srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)}
    )
    assert handed.status_code == 200, handed.text
    log = await client.get(srv.url("/audit-log?action=member.timed_out"), headers=ben.headers)
    assert [e["changes"] for e in log.json()] == [{"timed_out_until": until}]
    async with pool.acquire() as conn:
        told = await factories.events_of(conn, "server", uuid.UUID(srv.id))
    assert not [d for t, d in told if t == "member.updated" and d["user"]["id"] == str(ben.id)][1:]


async def test_slowmode_holds_members_to_one_message_per_period_except_moderators(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.MANAGE_MESSAGES), mod)
    slow = await client.patch(
        f"/api/channels/{srv.general}", headers=ann.headers, json={"rate_limit_per_user": 30}
    )
    assert slow.status_code == 200 and slow.json()["rate_limit_per_user"] == 30
    url = f"/api/channels/{srv.general}/messages"
    assert (await client.post(url, headers=ben.headers, json={"content": "one"})).status_code == 201
    second = await client.post(url, headers=ben.headers, json={"content": "two"})
    assert second.status_code == 429 and second.json()["code"] == "SLOWMODE"
    assert 0 < int(second.headers["Retry-After"]) <= 30
    for text in ("a", "b"):
        assert (
            await client.post(url, headers=mod.headers, json={"content": text})
        ).status_code == 201
    async with pool.acquire() as conn:  # the period passes
        await conn.execute("UPDATE read_states SET last_sent_at = now() - interval '31 s'")
    assert (
        await client.post(url, headers=ben.headers, json={"content": "three"})
    ).status_code == 201
    too_slow = await client.patch(
        f"/api/channels/{srv.general}", headers=ann.headers, json={"rate_limit_per_user": 21601}
    )
    assert too_slow.status_code == 400


async def test_moderators_bulk_delete_up_to_a_hundred_messages_audited_as_one(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.MANAGE_MESSAGES), mod)
    spam = [(await factories.say(client, ben, srv.general, f"spam {i}"))["id"] for i in range(3)]
    keep = await factories.say(client, ben, srv.general, "a keeper")
    elsewhere = (await factories.group(client, ben, mod, name="g"))["id"]
    foreign = await factories.say(client, ben, elsewhere, "not in this channel")
    url = f"/api/channels/{srv.general}/messages/bulk-delete"
    asked = [*spam, foreign["id"], str(uuid.uuid4()), spam[0]]
    refused = await client.post(url, headers=ben.headers, json={"messages": asked})
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    done = await client.post(
        url,
        headers={**mod.headers, "X-Audit-Log-Reason": "raid%20cleanup"},
        json={"messages": asked},
    )
    assert done.status_code == 200 and done.json() == {"deleted": spam}
    history = await client.get(f"/api/channels/{srv.general}/messages", headers=ann.headers)
    by_id = {m["id"]: m for m in history.json()}
    assert all(by_id[m]["deleted"] and by_id[m]["content"] == "" for m in spam)
    assert by_id[keep["id"]]["content"] == "a keeper"
    dm = await client.get(
        f"/api/channels/{elsewhere}/messages/{foreign['id']}", headers=ben.headers
    )
    assert dm.json()["deleted"] is False
    # Once more: nothing left to delete, nothing audited.
    again = await client.post(url, headers=mod.headers, json={"messages": spam})
    assert again.status_code == 200 and again.json() == {"deleted": []}
    log = await client.get(srv.url("/audit-log?action=message.bulk_deleted"), headers=ann.headers)
    (entry,) = log.json()
    assert entry["actor_id"] == str(mod.id) and entry["reason"] == "raid cleanup"
    assert entry["changes"] == {"count": 3, "message_ids": spam}
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
    deleted = [d["id"] for t, d in events if t == "message.deleted"]
    assert deleted == spam
    # Resumes replay no deleted text.
    texts = [d.get("content") for t, d in events if t == "message.created" and d["id"] in spam]
    assert texts == ["", "", ""]
    for bad in ([], [str(uuid.uuid4()) for _ in range(101)]):
        wrong = await client.post(url, headers=mod.headers, json={"messages": bad})
        assert wrong.status_code == 400, bad
    not_ids = await client.post(url, headers=mod.headers, json={"messages": ["x"]})
    assert not_ids.status_code == 400
    # A conversation has no moderators; a channel one cannot see is not there.
    mine = await client.post(
        f"/api/channels/{elsewhere}/messages/bulk-delete",
        headers=ben.headers,
        json={"messages": [foreign["id"]]},
    )
    assert mine.status_code == 403
    stranger = await make_user("zed")
    hidden = await client.post(url, headers=stranger.headers, json={"messages": spam})
    assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_the_demo_server_has_real_roles_and_a_moderators_only_channel(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    from xfchat.domain.demo import DEMO_PASSWORD, DEMO_SERVER_ID, seed_demo

    async with pool.acquire() as conn:
        await seed_demo(conn)

    async def seen_by(name: str) -> dict[str, object]:
        login = await client.post(
            "/api/auth/login", json={"login": name, "password": DEMO_PASSWORD}
        )
        token = login.json()["access_token"]
        got = await client.get(
            f"/api/servers/{DEMO_SERVER_ID}", headers={"Authorization": f"Bearer {token}"}
        )
        return dict(got.json())

    eve, bob = await seen_by("eve"), await seen_by("bob")
    names = lambda s: [c["name"] for c in s["channels"] if c["kind"] == "text"]  # noqa: E731
    assert names(eve) == ["general", "announcements", "gaming"]
    assert names(bob) == ["general", "announcements", "gaming", "mod-lounge"]
    kinds = [c["kind"] for c in bob["channels"]]  # type: ignore[union-attr]
    assert kinds.count("voice") == 3 and kinds.count("category") == 2
    assert {r["name"] for r in eve["roles"]} == {"@everyone", "Member", "Moderator", "Admin"}  # type: ignore[union-attr]


async def test_a_profile_change_reaches_each_server_once_not_each_channel(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    changed = await client.patch("/api/users/@me", headers=ben.headers, json={"display_name": "B"})
    assert changed.status_code == 200
    async with pool.acquire() as conn:
        on_server = await factories.events_of(conn, "server", uuid.UUID(srv.id))
        on_channel = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
    updates = [d for t, d in on_server if t == "user.updated"]
    assert [u["display_name"] for u in updates] == ["B"]
    assert not [t for t, _ in on_channel if t == "user.updated"]


async def test_members_bans_and_the_audit_log_say_whether_more_follow(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: these lists paged with after/before but sent no X-Has-More or Link, unlike
    every other list: a client could only tell the end by a short page."""
    ann = await make_user("ann")
    others = [await make_user(f"u{i}") for i in range(4)]
    srv = await community(client, ann, *others)
    for who in others[:3]:
        banned = await client.put(srv.url(f"/bans/{who.id}"), headers=ann.headers, json={})
        assert banned.status_code == 204
    for path, total in (("/members", 2), ("/bans", 3), ("/audit-log", 4)):  # (+ an invite)
        seen: list[Any] = []
        url: str | None = srv.url(f"{path}?limit=2")
        while url is not None:
            page = await client.get(url, headers=ann.headers)
            assert page.status_code == 200, page.text
            seen += page.json()
            more = page.headers["x-has-more"] == "true"
            assert more == ("link" in page.headers), path
            url = page.headers["link"][1:].split(">")[0] if more else None
        assert len(seen) == total and len({str(s) for s in seen}) == total, (path, seen)


async def test_a_patch_that_changes_nothing_answers_the_object_and_writes_and_tells_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    mods_id = await role(client, srv, ann, "mods", 0)
    channel = f"/api/channels/{srv.general}"
    me = (await client.get("/api/users/@me", headers=ann.headers)).json()
    server = (await client.get(srv.url(), headers=ann.headers)).json()
    (mods,) = [r for r in server["roles"] if r["id"] == mods_id]
    shown = {
        "/api/users/@me": me,
        srv.url(): {
            k: server[k]
            for k in (await client.get("/api/users/@me/servers", headers=ann.headers)).json()[0]
        },
        channel: (await client.get(channel, headers=ann.headers)).json(),
        srv.url(f"/roles/{mods_id}"): mods,
    }
    same = {
        "/api/users/@me": {"display_name": me["display_name"], "status_text": None},
        srv.url(): {"name": server["name"], "description": None, "icon_url": None},
        channel: {"name": "general", "topic": None, "parent_id": None},
        srv.url(f"/roles/{mods_id}"): {"name": "mods", "permissions": "0", "hoist": False},
    }

    async def written() -> tuple[int, int]:
        async with pool.acquire() as conn:
            events = await conn.fetchval("SELECT count(*) FROM events")
            audits = await conn.fetchval("SELECT count(*) FROM audit_log")
        return events, audits

    before = await written()
    for url, state in shown.items():
        for body in ({}, same[url]):
            answer = await client.patch(url, headers=ann.headers, json=body)
            assert (answer.status_code, answer.json()) == (200, state), (url, body)
            if url == "/api/users/@me":  # not counted among profile changes
                assert answer.headers.get("x-ratelimit-bucket") != "profile"
    assert await written() == before
    refused = await client.patch(channel, headers=ben.headers, json={})  # still asked
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    changed = await client.patch("/api/users/@me", headers=ann.headers, json={"status_text": "x"})
    assert changed.headers.get("x-ratelimit-bucket") == "profile"
    topic = await client.patch(channel, headers=ann.headers, json={"topic": "news"})
    assert topic.json()["topic"] == "news"
    events, audits = await written()
    assert events > before[0] and audits == before[1] + 1


async def test_a_bans_reason_in_its_body_is_cleaned_as_the_headers_is(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    # The body's reason was stored as sent: line breaks, escape sequences and other
    # control characters went into the ban list and the audit log, where the header's
    # are dropped or read as spaces, and a reason of only spaces was kept as one.
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    sent = "spam\nlinks\x1b[31m\x07 "
    banned = await client.put(
        srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={"reason": sent}
    )
    assert banned.status_code == 204
    blank = await client.put(srv.url(f"/bans/{cid.id}"), headers=ann.headers, json={"reason": "  "})
    assert blank.status_code == 204
    bans = (await client.get(srv.url("/bans"), headers=ann.headers)).json()
    assert {b["user"]["id"]: b["reason"] for b in bans} == {
        str(ben.id): "spam links[31m",
        str(cid.id): None,
    }
    log = (await client.get(srv.url("/audit-log?action=member.banned"), headers=ann.headers)).json()
    assert {e["target_id"]: e["reason"] for e in log} == {
        str(ben.id): "spam links[31m",
        str(cid.id): None,
    }


async def test_lifting_a_timeout_nobody_has_or_giving_the_same_nickname_audits_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: `{timed_out_until: null}` on a member never timed out wrote a
    `member.timed_out` entry of a removal and told every member `member.updated`, and a
    nickname given as it was wrote a `member.updated` entry of no change."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    named = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"nickname": "Bee"}
    )
    assert named.status_code == 200
    for body in ({"timed_out_until": None}, {"nickname": "Bee"}):
        same = await client.patch(srv.url(f"/members/{ben.id}"), headers=ann.headers, json=body)
        assert same.status_code == 200 and same.json()["nickname"] == "Bee"
        assert same.json()["timed_out_until"] is None
    # nor is lifting one that ran out already
    until = await timed_out_and_run_out(client, pool, srv, ann, ben)
    lifted = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"timed_out_until": None}
    )
    assert lifted.status_code == 200
    log = (await client.get(srv.url("/audit-log"), headers=ann.headers)).json()
    assert [(e["action"], e["changes"]) for e in log if e["action"].startswith("member.")] == [
        ("member.timed_out", {"timed_out_until": until}),
        ("member.updated", {"nickname": "Bee"}),
    ]
    async with pool.acquire() as conn:
        told = await factories.events_of(conn, "server", uuid.UUID(srv.id))
    assert (
        len([d for t, d in told if t == "member.updated" and d["user"]["id"] == str(ben.id)]) == 2
    )


async def test_a_member_changes_audit_entry_records_the_nickname_as_written(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: the entry recorded the nickname as sent (" Bee ", "" for a cleared one), not
    the "Bee" (or null) written."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    for sent in ("  Bee  ", ""):
        done = await client.patch(
            srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"nickname": sent}
        )
        assert done.status_code == 200
    log = (
        await client.get(srv.url("/audit-log?action=member.updated"), headers=ann.headers)
    ).json()
    assert [e["changes"] for e in log] == [{"nickname": None}, {"nickname": "Bee"}]


async def test_an_audit_reasons_unicode_line_breaks_read_as_spaces(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: U+2028 and U+2029 (line and paragraph separators) stayed in the reason, where
    every other line break reads as a space."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    reason = {"X-Audit-Log-Reason": "spam%E2%80%A8links%E2%80%A9again"}
    kicked = await client.delete(srv.url(f"/members/{ben.id}"), headers={**ann.headers, **reason})
    assert kicked.status_code == 204
    log = (await client.get(srv.url("/audit-log?action=member.kicked"), headers=ann.headers)).json()
    assert [e["reason"] for e in log] == ["spam links again"]


async def test_ones_own_nickname_is_audited_and_counted(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: a member's change of their own nickname wrote no audit entry (Discord's log
    shows it), and had only the API's 600 a minute, each change told to every member of
    the server. Now it is a `member.updated` entry by and about them, counted in
    `nickname` (XFCHAT_RATE_NICKNAME_USER, 10 in 10 minutes; 2 here, refused ones
    included): past it, 429 and nothing changed. A moderator's change of another's is
    not counted there."""
    client = await app_with(rate_nickname_user="2/600")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    answers = [
        await client.patch(srv.url("/members/@me"), headers=ben.headers, json={"nickname": n})
        for n in ("Bee", "Bea", "Bo")
    ]
    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    assert answers[2].json()["bucket"] == "nickname"
    log = (
        await client.get(srv.url("/audit-log?action=member.updated"), headers=ann.headers)
    ).json()
    assert [(e["actor_id"], e["target_id"], e["changes"]) for e in log] == [
        (str(ben.id), str(ben.id), {"nickname": "Bea"}),
        (str(ben.id), str(ben.id), {"nickname": "Bee"}),
    ]
    member = await client.get(srv.url(f"/members/{ben.id}"), headers=ann.headers)
    assert member.json()["nickname"] == "Bea"
    for n in ("One", "Two", "Three"):
        by_owner = await client.patch(
            srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"nickname": n}
        )
        assert by_owner.status_code == 200, by_owner.text


async def test_ones_own_nickname_given_as_it_is_is_not_counted(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: a PATCH of one's own nickname as it already is (a client saving its member
    form with the nickname untouched) changed, audited and told nothing, but took a
    token of `nickname`, so that the third such save here (the eleventh at the default)
    was 429 and a real change after it too; a profile change of nothing is not counted
    in `profile`. A change that is refused still counts."""
    client = await app_with(rate_nickname_user="2/600")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    first = await client.patch(
        srv.url("/members/@me"), headers=ben.headers, json={"nickname": "Bee"}
    )
    assert first.status_code == 200, first.text
    for _ in range(3):
        same = await client.patch(
            srv.url(f"/members/{ben.id}"), headers=ben.headers, json={"nickname": "Bee"}
        )
        assert same.status_code == 200 and same.json()["nickname"] == "Bee", same.text
    changed = await client.patch(
        srv.url("/members/@me"), headers=ben.headers, json={"nickname": "Bo"}
    )
    assert changed.status_code == 200 and changed.json()["nickname"] == "Bo", changed.text
    over = await client.patch(srv.url("/members/@me"), headers=ben.headers, json={"nickname": "B"})
    assert over.status_code == 429 and over.json()["bucket"] == "nickname", over.text
    log = (
        await client.get(srv.url("/audit-log?action=member.updated"), headers=ann.headers)
    ).json()
    assert [e["changes"] for e in log] == [{"nickname": "Bo"}, {"nickname": "Bee"}]
