"""Voice states: joining (limits, one channel per user, permissions, timeouts), server
mute, deafen and move, the states that end with what they depend on, conversation
calls, and the ICE servers. Joining is a gateway op; here the domain function it calls
builds the states (tests/realtime/test_voice.py drives the gateway itself)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import (
    Community,
    MakeUser,
    TestUser,
    community,
    events_of,
    in_voice,
    override,
    role,
    server_channel,
    voice_join,
    voice_refusal,
)
from xfchat.db.queries import audit as audit_q
from xfchat.db.queries import voice as voice_q
from xfchat.domain import voice
from xfchat.domain.permissions import Permission as P
from xfchat.errors import XFChatError


async def voice_events(conn: asyncpg.Connection, channel: object) -> list[tuple[str, bool]]:
    """(user_id, left) of each voice.state_updated of a channel, in order."""
    return [
        (d["user_id"], d["left"])
        for t, d in await events_of(conn, "channel", uuid.UUID(str(channel)))
        if t == "voice.state_updated"
    ]


async def lounge(
    client: httpx.AsyncClient, srv: Community, owner: TestUser, name: str = "Lounge", **fields: Any
) -> str:
    return str((await server_channel(client, srv, owner, name, kind="voice", **fields))["id"])


async def test_join_change_and_leave_are_announced_and_in_the_state(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    room = await lounge(client, srv, ann)
    joined = await voice_join(pool, ann, room)
    assert [s["user_id"] for s in joined.voice_states] == [str(ann.id)]
    assert joined.state["channel_id"] == room and joined.state["server_id"] == srv.id
    second = await voice_join(pool, ben, room, self_mute=True)
    assert [s["user_id"] for s in second.voice_states] == [str(ann.id), str(ben.id)]
    assert await in_voice(client, ann, room) == [str(ann.id), str(ben.id)]
    state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    (mine,) = state["servers"]
    assert [(s["user_id"], s["self_mute"]) for s in mine["voice_states"]] == [
        (str(ann.id), False),
        (str(ben.id), True),
    ]
    # The same connection changing its flags: an update, no new join.
    holder = voice.Holder(uuid.uuid4(), uuid.UUID(second.state["connection_id"]))
    assert await voice_join(pool, ben, room, holder=holder, self_deaf=True) is None
    assert await voice_join(pool, ben, room, holder=holder, self_deaf=True) is None  # no change
    assert await voice_join(pool, ben, None, holder=holder) is None  # leaves
    assert await voice_events(conn, room) == [
        (str(ann.id), False),
        (str(ben.id), False),
        (str(ben.id), False),  # deafened (the repeat changed nothing: no event)
        (str(ben.id), True),
    ]
    assert await in_voice(client, ben, room) == [str(ann.id)]
    text = await client.get(f"/api/channels/{srv.general}/voice-states", headers=ann.headers)
    assert text.status_code == 400 and text.json()["code"] == "NOT_A_VOICE_CHANNEL"


async def test_one_channel_per_user_joining_another_leaves_the_first(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    first, second = await lounge(client, srv, ann, "one"), await lounge(client, srv, ann, "two")
    await voice_join(pool, ann, first)
    # Another connection of hers (another tab) joining elsewhere takes the state over.
    moved = await voice_join(pool, ann, second)
    assert moved.voice_states == [moved.state]
    assert await in_voice(client, ann, first) == []
    assert await in_voice(client, ann, second) == [str(ann.id)]
    assert await voice_events(conn, first) == [(str(ann.id), False), (str(ann.id), True)]
    assert await voice_events(conn, second) == [(str(ann.id), False)]
    # Leaving from a connection that no longer holds the state leaves nothing.
    assert await voice_join(pool, ann, None) is None
    assert await in_voice(client, ann, second) == [str(ann.id)]


async def test_user_limit_is_refused_unless_move_members_and_the_mesh_limit_always(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    people = [await make_user(f"u{i}") for i in range(10)]
    owner, mod = people[0], people[1]
    srv = await community(client, *people)
    await role(client, srv, owner, "movers", int(P.CONNECT | P.MOVE_MEMBERS), mod)
    small = await lounge(client, srv, owner, "small", user_limit=2)
    await voice_join(pool, people[2], small)
    await voice_join(pool, people[3], small)
    assert await voice_refusal(pool, people[4], small) == (403, "CHANNEL_FULL")
    await voice_join(pool, mod, small)  # MOVE_MEMBERS goes past the channel's limit
    assert len(await in_voice(client, owner, small)) == 3
    big = await lounge(client, srv, owner, "big", user_limit=0)  # 0: no limit of its own
    for who in people[2:]:
        await voice_join(pool, who, big)
    assert len(await in_voice(client, owner, big)) == voice.MESH_LIMIT
    # A ninth is refused, whoever they are: the owner holds every permission.
    assert await voice_refusal(pool, owner, big) == (403, "CHANNEL_FULL")
    assert await voice_refusal(pool, mod, big) == (403, "CHANNEL_FULL")


async def test_join_needs_connect_sight_a_voice_channel_and_no_timeout(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben, mod = await make_user("ann"), await make_user("ben"), await make_user("mod")
    srv = await community(client, ann, ben, mod)
    await role(client, srv, ann, "mods", int(P.MODERATE_MEMBERS), mod)
    room = await lounge(client, srv, ann)
    denied = await override(client, ann, room, "member", ben.id, deny=int(P.CONNECT))
    assert denied.status_code == 200
    assert await voice_refusal(pool, ben, room) == (403, "MISSING_PERMISSIONS")
    await override(client, ann, room, "member", ben.id, deny=int(P.VIEW_CHANNEL))
    assert await voice_refusal(pool, ben, room) == (404, "CHANNEL_NOT_FOUND")
    assert await voice_refusal(pool, ben, uuid.uuid4()) == (404, "CHANNEL_NOT_FOUND")
    assert await voice_refusal(pool, ben, srv.general) == (400, "NOT_A_VOICE_CHANNEL")
    await client.delete(f"/api/channels/{room}/overrides/member/{ben.id}", headers=ann.headers)
    await voice_join(pool, ben, room)
    # A timeout ends their call at once, and they cannot join while it lasts.
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    timed = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=mod.headers, json={"timed_out_until": until}
    )
    assert timed.status_code == 200
    assert await in_voice(client, ann, room) == []
    assert await voice_refusal(pool, ben, room) == (403, "TIMED_OUT")


async def test_server_mute_deafen_move_and_disconnect_need_their_permissions(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann, ben, mod, cid = [await make_user(n) for n in ("ann", "ben", "mod", "cid")]
    srv = await community(client, ann, ben, mod, cid)
    room, other = await lounge(client, srv, ann, "room"), await lounge(client, srv, ann, "other")
    await voice_join(pool, ben, room)
    url = srv.url(f"/members/{ben.id}/voice")
    for body, missing in (
        ({"mute": True}, "MUTE_MEMBERS"),
        ({"deaf": True}, "DEAFEN_MEMBERS"),
        ({"channel_id": other}, "MOVE_MEMBERS"),
        ({"channel_id": None}, "MOVE_MEMBERS"),
    ):
        no = await client.patch(url, headers=cid.headers, json=body)
        assert no.status_code == 403 and no.json()["missing"] == missing, no.text
    await role(client, srv, ann, "mods", int(P.MUTE_MEMBERS | P.DEAFEN_MEMBERS), mod)
    muted = await client.patch(url, headers=mod.headers, json={"mute": True, "deaf": True})
    assert muted.status_code == 200, muted.text
    body = muted.json()
    assert body["mute"] and body["deaf"]
    assert body["voice_state"]["server_mute"] and body["voice_state"]["server_deaf"]
    still = await client.patch(url, headers=mod.headers, json={"channel_id": other})
    assert still.status_code == 403 and still.json()["missing"] == "MOVE_MEMBERS"
    # A server mute is the member's: it stays when they leave voice and come back.
    holder = voice.Holder(uuid.uuid4(), uuid.UUID(body["voice_state"]["connection_id"]))
    await voice_join(pool, ben, None, holder=holder)
    back = await voice_join(pool, ben, room)
    assert back.state["server_mute"] and back.state["server_deaf"]
    # Overrides count: MOVE_MEMBERS granted in both channels lets mod move him.
    for channel in (room, other):
        await override(client, ann, channel, "member", mod.id, allow=int(P.MOVE_MEMBERS))
    moved = await client.patch(url, headers=mod.headers, json={"channel_id": other})
    assert moved.status_code == 200 and moved.json()["voice_state"]["channel_id"] == other
    assert await in_voice(client, ann, room) == [] and await in_voice(client, ann, other) == [
        str(ben.id)
    ]
    assert (await voice_events(conn, other))[-1] == (str(ben.id), False)
    assert (await voice_events(conn, room))[-1] == (str(ben.id), True)
    into_text = await client.patch(url, headers=ann.headers, json={"channel_id": srv.general})
    assert into_text.status_code == 400 and into_text.json()["code"] == "NOT_A_VOICE_CHANNEL"
    hidden = await lounge(client, srv, ann, "hidden")
    await override(client, ann, hidden, "member", ben.id, deny=int(P.VIEW_CHANNEL))
    unseen = await client.patch(url, headers=ann.headers, json={"channel_id": hidden})
    assert unseen.status_code == 403 and unseen.json()["code"] == "MEMBER_CANNOT_SEE_CHANNEL"
    gone = await client.patch(url, headers=mod.headers, json={"mute": False, "channel_id": None})
    assert gone.status_code == 200, gone.text
    assert gone.json() == {
        "server_id": srv.id,
        "user_id": str(ben.id),
        "mute": False,
        "deaf": True,
        "voice_state": None,
    }
    assert await in_voice(client, ann, other) == []
    not_in = await client.patch(url, headers=ann.headers, json={"channel_id": room})
    assert not_in.status_code == 400 and not_in.json()["code"] == "NOT_IN_VOICE"
    # Out of voice, a mute is still set (server-wide permission).
    later = await client.patch(url, headers=mod.headers, json={"mute": True})
    assert later.status_code == 200 and later.json()["voice_state"] is None
    empty = await client.patch(url, headers=mod.headers, json={})
    assert empty.status_code == 400 and empty.json()["code"] == "VALIDATION_ERROR"
    assert empty.json()["field"] == "body"  # (as every VALIDATION_ERROR names one)
    nobody = await client.patch(
        srv.url(f"/members/{uuid.uuid4()}/voice"), headers=ann.headers, json={"mute": True}
    )
    assert nobody.status_code == 404 and nobody.json()["code"] == "MEMBER_NOT_FOUND"
    log = await client.get(srv.url("/audit-log?action=member.voice_updated"), headers=ann.headers)
    assert [e["changes"] for e in log.json()][::-1] == [
        {"mute": True, "deaf": True},
        {"channel_id": other, "from_channel_id": room},
        {"mute": False, "channel_id": None, "from_channel_id": other},
        {"mute": True},
    ]


async def test_leaving_a_kick_a_ban_and_losing_sight_end_the_call(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    srv = await community(client, ann, ben, cid, dan)
    room = await lounge(client, srv, ann)
    for who in (ben, cid, dan):
        await voice_join(pool, who, room)
    left = await client.delete(srv.url("/members/@me"), headers=ben.headers)
    kicked = await client.delete(srv.url(f"/members/{cid.id}"), headers=ann.headers)
    assert left.status_code == kicked.status_code == 204
    assert await in_voice(client, ann, room) == [str(dan.id)]
    hidden = await override(client, ann, room, "member", dan.id, deny=int(P.VIEW_CHANNEL))
    assert hidden.status_code == 200
    assert await in_voice(client, ann, room) == []
    assert [e for e in await voice_events(conn, room) if e[1]] == [
        (str(ben.id), True),
        (str(cid.id), True),
        (str(dan.id), True),
    ]
    await voice_join(pool, ann, room)
    deleted = await client.delete(f"/api/channels/{room}", headers=ann.headers)
    assert deleted.status_code == 204  # (its `channel.hidden` ends the states in it)
    state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert state["servers"][0]["voice_states"] == []
    room2 = await lounge(client, srv, ann, "again")
    await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)
    await voice_join(pool, ben, room2)
    assert (await client.put(srv.url(f"/bans/{ben.id}"), headers=ann.headers)).status_code == 204
    assert await in_voice(client, ann, room2) == []


async def test_a_conversation_holds_a_call_for_its_participants_only(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben, cid, eve = [await make_user(n) for n in ("ann", "ben", "cid", "eve")]
    crew = (await factories.group(client, ann, ben, cid))["id"]
    await voice_join(pool, ann, crew)
    joined = await voice_join(pool, ben, crew)
    assert [s["user_id"] for s in joined.voice_states] == [str(ann.id), str(ben.id)]
    assert joined.state["server_id"] is None
    assert await voice_refusal(pool, eve, crew) == (404, "CHANNEL_NOT_FOUND")
    assert await in_voice(client, cid, crew) == [str(ann.id), str(ben.id)]
    state = (await client.get("/api/users/@me/state", headers=cid.headers)).json()
    assert [s["user_id"] for s in state["voice_states"]] == [str(ann.id), str(ben.id)]
    removed = await client.delete(
        f"/api/conversations/{crew}/participants/{ben.id}", headers=ann.headers
    )
    assert removed.status_code == 204
    assert await in_voice(client, ann, crew) == [str(ann.id)]
    # A direct call: not across a block, and a block ends one.
    dm = (await factories.direct(client, ann, eve))["id"]
    await voice_join(pool, eve, dm)
    await voice_join(pool, ann, dm)
    assert await in_voice(client, ann, dm) == [str(eve.id), str(ann.id)]
    assert (
        await client.put(f"/api/users/@me/blocks/{ann.id}", headers=eve.headers)
    ).status_code == 204
    assert await in_voice(client, ann, dm) == []
    assert await voice_refusal(pool, ann, dm) == (403, "CANNOT_MESSAGE_USER")


async def test_ice_servers_give_turn_credentials_in_coturns_scheme(
    client: httpx.AsyncClient, app_with: factories.AppWith, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    plain = await client.get("/api/voice/ice-servers", headers=ann.headers)
    assert plain.status_code == 200
    assert plain.json() == {"ice_servers": [], "expires_at": None, "ice_transport_policy": "all"}
    secret = "a-coturn-static-auth-secret"
    with_turn = await app_with(
        stun_urls="stun:stun.example.com:3478",
        turn_urls="turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349",
        turn_secret=secret,
        turn_ttl_s=600,
    )
    before = int(time.time())
    got = await with_turn.get("/api/voice/ice-servers", headers=ann.headers)
    assert got.status_code == 200
    stun, turn = got.json()["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.com:3478"]}
    assert turn["urls"] == [
        "turn:turn.example.com:3478?transport=udp",
        "turns:turn.example.com:5349",
    ]
    expiry, user = turn["username"].split(":")
    assert user == str(ann.id) and before + 600 <= int(expiry) <= int(time.time()) + 600
    mac = hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(mac).decode()
    assert datetime.fromisoformat(got.json()["expires_at"]).timestamp() == int(expiry)
    assert got.json()["ice_transport_policy"] == "all"
    assert (await client.get("/api/voice/ice-servers")).status_code == 401
    # Relay only: peers are told to gather only the TURN server's candidates.
    relayed = await app_with(
        turn_urls="turn:turn.example.com", turn_secret=secret, voice_relay_only=True
    )
    got = await relayed.get("/api/voice/ice-servers", headers=ann.headers)
    assert got.json()["ice_transport_policy"] == "relay"


async def test_moderation_neither_takes_an_empty_change_nor_tells_a_hidden_channel(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben, mod = await make_user("ann"), await make_user("ben"), await make_user("mod")
    srv = await community(client, ann, ben, mod)
    await role(client, srv, ann, "mods", int(P.MUTE_MEMBERS | P.VIEW_AUDIT_LOG), mod)
    secret = await lounge(client, srv, ann, "Secret")
    hidden = await override(client, ann, secret, "member", mod.id, deny=int(P.VIEW_CHANNEL))
    assert hidden.status_code in (200, 204), hidden.text
    url = srv.url(f"/members/{ben.id}/voice")
    empty = await client.patch(url, headers=mod.headers, json={})
    assert empty.status_code == 400 and empty.json()["code"] == "VALIDATION_ERROR"
    away = await client.patch(url, headers=mod.headers, json={"mute": True})
    assert away.status_code == 200 and away.json()["voice_state"] is None
    # Was: a mute of a member not in voice showed nowhere (no field, no event) until
    # they joined: other moderators, and the member, could not know.
    member = (await client.get(srv.url(f"/members/{ben.id}"), headers=ben.headers)).json()
    assert (member["mute"], member["deaf"]) == (True, False)
    async with pool.acquire() as conn:
        told = await factories.events_of(conn, "server", uuid.UUID(srv.id))
    updates = [d for t, d in told if t == "member.updated" and d["user"]["id"] == str(ben.id)]
    assert updates and updates[-1]["mute"] is True
    await voice_join(pool, ben, secret)
    inside = await client.patch(url, headers=mod.headers, json={"mute": False})
    assert inside.status_code == 200, inside.text  # as if not in voice: nothing told
    assert inside.json()["voice_state"] is None and inside.json()["mute"] is False
    moved = await client.patch(url, headers=mod.headers, json={"channel_id": None})
    assert moved.status_code in (400, 403)  # no MOVE_MEMBERS; nothing about the channel
    assert "Secret" not in moved.text and secret not in moved.text
    seen = await client.patch(url, headers=ann.headers, json={"mute": True})
    assert seen.json()["voice_state"]["channel_id"] == secret
    # Nor does the audit log: was, a move out of the hidden channel (to one mod sees, or
    # a disconnect) showed to mod, who reads the log (only the destination was judged).
    room = await lounge(client, srv, ann, "Room")
    for to in (room, None, None):
        await voice_join(pool, ben, secret)
        assert (await client.patch(url, headers=ann.headers, json={"channel_id": to})).is_success
    await voice_join(pool, ben, room)
    assert (await client.patch(url, headers=ann.headers, json={"channel_id": None})).is_success
    async with pool.acquire() as conn:  # an entry from before the source was recorded
        await audit_q.insert_audit_entry(
            conn, server_id=uuid.UUID(srv.id), actor_id=ann.id, action="member.voice_updated",
            target_type="user", target_id=ben.id, changes={"channel_id": None}, reason=None,
        )  # fmt: skip
    query = "/audit-log?action=member.voice_updated"
    log = await client.get(srv.url(query), headers=mod.headers)
    assert [e["changes"] for e in log.json()] == [
        {"channel_id": None, "from_channel_id": room},
        {"mute": True},
        {"mute": False},
        {"mute": True},
    ]
    owners = await client.get(srv.url(query), headers=ann.headers)
    assert [e["changes"].get("from_channel_id", "-") for e in owners.json()][:5] == [
        "-",  # (the old entry: the owner and administrators read every entry)
        room,
        secret,
        secret,
        secret,
    ]


async def test_a_choice_of_friends_only_ends_a_strangers_direct_call(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann, bad = await make_user("ann"), await make_user("bad")
    dm = (await factories.direct(client, bad, ann))["id"]
    mine = await voice_join(pool, bad, dm)
    await voice_join(pool, ann, dm)
    private = await client.put(
        "/api/users/@me/privacy", headers=ann.headers, json={"direct_messages": "friends"}
    )
    assert private.status_code == 200
    # Was: bad stayed in the call (listed, and signalling ann) after it closed to him.
    # The call ends for both (ann alone in it told bad it was a choice, not a block).
    assert await in_voice(client, ann, dm) == []
    assert sorted((await voice_events(conn, dm))[-2:]) == sorted(
        [(str(bad.id), True), (str(ann.id), True)]
    )
    assert await voice_refusal(pool, bad, dm) == (403, "CANNOT_MESSAGE_USER")
    holder = voice.Holder(uuid.uuid4(), uuid.UUID(mine.state["connection_id"]))
    with pytest.raises(XFChatError) as muting:  # no state left to change: a join
        await voice_join(pool, bad, dm, holder=holder, self_mute=True)
    assert muting.value.code == "CANNOT_MESSAGE_USER"
    # ann's own choice does not stop ann (bad takes messages from everyone).
    assert (await voice_join(pool, ann, dm)).state["user_id"] == str(ann.id)
    back = await client.put(
        "/api/users/@me/privacy", headers=ann.headers, json={"direct_messages": "everyone"}
    )
    assert back.status_code == 200
    await voice_join(pool, bad, dm)
    assert await in_voice(client, ann, dm) == [str(ann.id), str(bad.id)]


async def test_a_direct_call_closed_by_a_block_or_a_choice_ends_alike(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    """A stranger in a direct call is cut off by a block or by a choice of friends only,
    and the README promises that nothing tells him which. He still reads the
    conversation, its call's voice states too: after her block she had left with him
    (a block closes it both ways), after her choice she was still in it (hers stays
    open), so the call he was put out of told him which it was. Now the call ends for
    both either way; she may join again where she still may."""
    seen = []
    for how in ("block", "choice"):
        ann, bad = await make_user(f"ann_{how}"), await make_user(f"bad_{how}")
        dm = (await factories.direct(client, bad, ann))["id"]
        await voice_join(pool, bad, dm)
        await voice_join(pool, ann, dm)
        if how == "block":
            done = await client.put(f"/api/users/@me/blocks/{bad.id}", headers=ann.headers)
        else:
            done = await client.put(
                "/api/users/@me/privacy", headers=ann.headers, json={"direct_messages": "friends"}
            )
        assert done.status_code in (200, 204), done.text
        assert await voice_refusal(pool, bad, dm) == (403, "CANNOT_MESSAGE_USER")
        seen.append((await in_voice(client, bad, dm), sorted(await voice_events(conn, dm))))
        if how == "choice":  # (her own choice does not stop her)
            assert (await voice_join(pool, ann, dm)).state["user_id"] == str(ann.id)
    (by_block, block_events), (by_choice, choice_events) = seen
    assert by_block == by_choice == []
    assert [left for _, left in block_events] == [left for _, left in choice_events]


async def test_an_unfriending_ends_the_call_for_whom_it_closes_the_conversation(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    cid, dee = await make_user("cid"), await make_user("dee")
    await factories.befriend(cid, dee)
    private = await client.put(
        "/api/users/@me/privacy", headers=dee.headers, json={"direct_messages": "friends"}
    )
    assert private.status_code == 200
    dm = (await factories.direct(client, cid, dee))["id"]
    await voice_join(pool, cid, dm)
    await voice_join(pool, dee, dm)
    gone = await client.delete(f"/api/users/@me/friends/{cid.id}", headers=dee.headers)
    assert gone.status_code == 204
    # Was: cid stayed in the call. The call ends for both, as a block's does (dee alone
    # in it told cid it was no block); dee may join again (cid takes messages from
    # everyone).
    assert await in_voice(client, dee, dm) == []
    assert await voice_refusal(pool, cid, dm) == (403, "CANNOT_MESSAGE_USER")
    assert (await voice_join(pool, dee, dm)).state["user_id"] == str(dee.id)


async def test_flags_of_a_state_held_need_only_sight_of_the_channel_not_connect(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    room = await lounge(client, srv, ann)
    joined = await voice_join(pool, ben, room)
    denied = await override(client, ann, room, "member", ben.id, deny=int(P.CONNECT))
    assert denied.status_code == 200
    assert await in_voice(client, ann, room) == [str(ben.id)]  # CONNECT is for joining
    # Was: MISSING_PERMISSIONS, so he could stay but not even mute himself.
    holder = voice.Holder(uuid.uuid4(), uuid.UUID(joined.state["connection_id"]))
    assert await voice_join(pool, ben, room, holder=holder, self_mute=True) is None
    got = await client.get(f"/api/channels/{room}/voice-states", headers=ann.headers)
    assert [s["self_mute"] for s in got.json()] == [True]
    # Another connection of his taking the state over is a join: it needs CONNECT.
    assert await voice_refusal(pool, ben, room) == (403, "MISSING_PERMISSIONS")


async def test_a_move_needs_connect_in_the_destination_so_nobody_moves_past_its_deny(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    """Was: MOVE_MEMBERS alone let a moderator denied CONNECT in a voice channel move
    themselves into it (`@me`), or someone else, and listen there. Discord asks the
    mover for CONNECT in the destination too."""
    ann, ben, mod = await make_user("ann"), await make_user("ben"), await make_user("mod")
    srv = await community(client, ann, ben, mod)
    await role(client, srv, ann, "movers", int(P.MOVE_MEMBERS), mod)
    room = await lounge(client, srv, ann, "room")
    staff = await lounge(client, srv, ann, "staff")
    denied = await override(client, ann, staff, "role", srv.everyone_role, deny=int(P.CONNECT))
    assert denied.status_code == 200
    assert await voice_refusal(pool, mod, staff) == (403, "MISSING_PERMISSIONS")
    await voice_join(pool, mod, room)
    await voice_join(pool, ben, room)
    for who in ("@me", str(ben.id)):
        moved = await client.patch(
            srv.url(f"/members/{who}/voice"), headers=mod.headers, json={"channel_id": staff}
        )
        assert moved.status_code == 403, moved.text
        assert moved.json()["code"] == "MISSING_PERMISSIONS" and moved.json()["missing"] == (
            "CONNECT"
        )
    assert await in_voice(client, ann, staff) == []
    # With CONNECT there the move goes (the member moved needs only to see it, as in
    # Discord, where a moderator drags someone into a channel they may not join).
    await override(client, ann, staff, "member", mod.id, allow=int(P.CONNECT))
    moved = await client.patch(
        srv.url(f"/members/{ben.id}/voice"), headers=mod.headers, json={"channel_id": staff}
    )
    assert moved.status_code == 200, moved.text
    assert await in_voice(client, ann, staff) == [str(ben.id)]


async def test_a_move_logs_the_leave_before_the_join_whichever_way_it_goes(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    # The log used to order a move's two events by the channels' ids (its lock order),
    # so one way the join came first, and a client dropping the user on the leave lost
    # them. Both ways, a switch (op 4) and a moderator's move: the leave, then the join.
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    room, other = await lounge(client, srv, ann, "room"), await lounge(client, srv, ann, "other")
    await voice_join(pool, ben, room)
    await voice_join(pool, ben, other)
    await voice_join(pool, ben, room)
    url = srv.url(f"/members/{ben.id}/voice")
    for channel in (other, room):
        moved = await client.patch(url, headers=ann.headers, json={"channel_id": channel})
        assert moved.status_code == 200, moved.text
    rows = await conn.fetch(
        "SELECT e.data FROM event_commits c JOIN events e ON e.stream_id = c.stream_id"
        " AND e.pos BETWEEN c.first_pos AND c.last_pos"
        " WHERE e.type = 'voice.state_updated' ORDER BY c.g, e.pos"
    )
    got = [(r["data"]["channel_id"], r["data"]["left"]) for r in rows]
    hop = {room: [(other, True), (room, False)], other: [(room, True), (other, False)]}
    assert got == [(room, False), *hop[other], *hop[room], *hop[other], *hop[room]]


async def suppressions(conn: asyncpg.Connection, channel: object) -> list[tuple[str, bool]]:
    """(user_id, suppress) of each state (not leave) announced in a channel, in order."""
    return [
        (d["user_id"], d["suppress"])
        for t, d in await events_of(conn, "channel", uuid.UUID(str(channel)))
        if t == "voice.state_updated" and not d["left"]
    ]


async def test_a_member_without_speak_is_suppressed_and_a_permission_change_tells_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    # Was: SPEAK was never read: a member denied it joined like anyone and spoke.
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    room, other = await lounge(client, srv, ann, "room"), await lounge(client, srv, ann, "other")
    await override(client, ann, room, "member", ben.id, deny=int(P.SPEAK))
    assert (await voice_join(pool, ben, room)).state["suppress"] is True
    assert (await voice_join(pool, cid, room)).state["suppress"] is False
    listed = await client.get(f"/api/channels/{room}/voice-states", headers=ann.headers)
    assert [s["suppress"] for s in listed.json()] == [True, False]
    state = (await client.get("/api/users/@me/state", headers=cid.headers)).json()
    assert [s["suppress"] for s in state["servers"][0]["voice_states"]] == [True, False]
    # A move computes it in the destination.
    url = srv.url(f"/members/{ben.id}/voice")
    moved = await client.patch(url, headers=ann.headers, json={"channel_id": other})
    assert moved.json()["voice_state"]["suppress"] is False
    # A change of overrides or roles tells whoever in voice it flips, and nobody else.
    await override(client, ann, other, "role", srv.everyone_role, deny=int(P.SPEAK))
    deleted = await client.delete(
        f"/api/channels/{other}/overrides/role/{srv.everyone_role}", headers=ann.headers
    )
    assert deleted.is_success, deleted.text
    everyone = srv.url(f"/roles/{srv.everyone_role}")
    perms = (await client.get(srv.url("/roles"), headers=ann.headers)).json()
    base = int(next(r for r in perms if r["id"] == srv.everyone_role)["permissions"])
    speechless = await client.patch(
        everyone, headers=ann.headers, json={"permissions": str(base & ~P.SPEAK)}
    )
    assert speechless.status_code == 200, speechless.text
    assert await suppressions(conn, other) == [
        (str(ben.id), False),  # moved in
        (str(ben.id), True),  # @everyone denied SPEAK here
        (str(ben.id), False),  # ... no longer
        (str(ben.id), True),  # @everyone's SPEAK taken away
    ]
    assert await suppressions(conn, room) == [
        (str(ben.id), True),
        (str(cid.id), False),
        (str(cid.id), True),  # (only the last change touched cid's)
    ]


async def test_moderation_that_changes_nothing_writes_audits_and_tells_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    # Was: a mute or deafen as it already was (or a move into the channel the member is
    # in) still wrote a `member.voice_updated` entry and moved their voice state's
    # updated_at; now it answers as it stands, as the member PATCH of nothing does.
    ann, ben, cid, dee = [await make_user(n) for n in ("ann", "ben", "cid", "dee")]
    srv = await community(client, ann, ben, cid, dee)
    room = await lounge(client, srv, ann, "room")
    await voice_join(pool, ben, room)
    url, durl = srv.url(f"/members/{ben.id}/voice"), srv.url(f"/members/{dee.id}/voice")
    first = await client.patch(url, headers=ann.headers, json={"mute": True})
    assert first.status_code == 200 and first.json()["voice_state"]["server_mute"], first.text
    assert (await client.patch(durl, headers=ann.headers, json={"deaf": True})).is_success

    async def seen() -> tuple[object, ...]:
        log = await client.get(
            srv.url("/audit-log?action=member.voice_updated"), headers=ann.headers
        )
        state = await voice_q.get_voice_state(conn, user_id=ben.id)
        return (
            [e["id"] for e in log.json()],
            len(await events_of(conn, "server", uuid.UUID(srv.id))),
            len(await events_of(conn, "channel", uuid.UUID(room))),
            state,
        )

    before = await seen()
    for who, body in (
        (url, {"mute": True}),
        (url, {"mute": True, "deaf": False}),
        (url, {"channel_id": room}),
        (url, {"channel_id": room, "mute": True, "deaf": False}),
        (durl, {"deaf": True, "mute": False}),  # (not in voice)
    ):
        same = await client.patch(who, headers=ann.headers, json=body)
        assert same.status_code == 200, same.text
        assert (same.json()["mute"], same.json()["deaf"]) == (
            (True, False) if who == url else (False, True)
        )
        assert await seen() == before, body
    assert (await client.patch(url, headers=ann.headers, json={"mute": True})).json() == (
        first.json()
    )
    # A request of nothing is judged as any: one without the permission is still refused.
    no = await client.patch(url, headers=cid.headers, json={"mute": True})
    assert no.status_code == 403 and no.json()["missing"] == "MUTE_MEMBERS", no.text
    # A real change is still written, audited and told, the unchanged field left out.
    lifted = await client.patch(url, headers=ann.headers, json={"mute": False, "deaf": False})
    assert lifted.status_code == 200 and not lifted.json()["voice_state"]["server_mute"]
    log = await client.get(srv.url("/audit-log?action=member.voice_updated"), headers=ann.headers)
    assert [e["changes"] for e in log.json()] == [{"mute": False}, {"deaf": True}, {"mute": True}]
    after = await seen()
    assert after[1] == before[1] + 1 and after[2] == before[2] + 1  # type: ignore[operator]
