"""Voice, attacked with two accounts (a helper session's second hunt): joining where one
may not, states outliving access, moderation past its bounds, limits, and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests import factories
from tests.factories import (
    Community,
    MakeUser,
    TestUser,
    community,
    in_voice,
    override,
    role,
    server_channel,
    voice_join,
    voice_refusal,
)
from xfchat.domain import voice
from xfchat.domain.permissions import Permission as P


async def lounge(
    client: httpx.AsyncClient, srv: Community, owner: TestUser, name: str = "Lounge", **fields: Any
) -> str:
    return str((await server_channel(client, srv, owner, name, kind="voice", **fields))["id"])


async def test_category_changes_end_a_state_in_a_synced_voice_channel(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    cat = str((await server_channel(client, srv, ann, "Cat", kind="category"))["id"])
    room = await lounge(client, srv, ann, "in-cat", parent_id=cat)
    await voice_join(pool, ben, room)
    denied = await override(client, ann, cat, "member", ben.id, deny=int(P.VIEW_CHANNEL))
    assert denied.status_code == 200, denied.text
    assert await in_voice(client, ann, room) == []
    # A channel moved into a category that hides it from him.
    out = await lounge(client, srv, ann, "outside")
    await voice_join(pool, ben, out)
    moved = await client.patch(
        f"/api/channels/{out}",
        headers=ann.headers,
        json={"parent_id": cat, "permissions_synced": True},
    )
    assert moved.status_code == 200, moved.text
    assert await in_voice(client, ann, out) == []
    assert await voice_refusal(pool, ben, out) == (404, "CHANNEL_NOT_FOUND")


async def test_a_role_taken_away_or_deleted_ends_the_state_it_let_in(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    vip = await role(client, srv, ann, "vip", 0, ben)
    room = await lounge(client, srv, ann, "vip-room")
    await override(client, ann, room, "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    await override(client, ann, room, "role", vip, allow=int(P.VIEW_CHANNEL | P.CONNECT))
    await voice_join(pool, ben, room)
    taken = await client.delete(srv.url(f"/members/{ben.id}/roles/{vip}"), headers=ann.headers)
    assert taken.status_code == 204
    assert await in_voice(client, ann, room) == []
    given = await client.put(srv.url(f"/members/{ben.id}/roles/{vip}"), headers=ann.headers)
    assert given.status_code == 204
    await voice_join(pool, ben, room)
    gone = await client.delete(srv.url(f"/roles/{vip}"), headers=ann.headers)
    assert gone.status_code == 204, gone.text
    assert await in_voice(client, ann, room) == []


async def test_a_timed_out_moderator_neither_moves_mutes_nor_disconnects(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben, mod = await make_user("ann"), await make_user("ben"), await make_user("mod")
    srv = await community(client, ann, ben, mod)
    powers = P.MUTE_MEMBERS | P.DEAFEN_MEMBERS | P.MOVE_MEMBERS | P.CONNECT
    await role(client, srv, ann, "mods", int(powers), mod)
    room, other = await lounge(client, srv, ann, "room"), await lounge(client, srv, ann, "other")
    await voice_join(pool, ben, room)
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    timed = await client.patch(
        srv.url(f"/members/{mod.id}"), headers=ann.headers, json={"timed_out_until": until}
    )
    assert timed.status_code == 200, timed.text
    url = srv.url(f"/members/{ben.id}/voice")
    for body in ({"mute": True}, {"deaf": True}, {"channel_id": other}, {"channel_id": None}):
        got = await client.patch(url, headers=mod.headers, json=body)
        assert got.status_code == 403, (body, got.text)
    assert await in_voice(client, ann, room) == [str(ben.id)]


async def test_moves_elsewhere_are_refused_in_json(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    other_srv = await community(client, ann, ben, name="other")
    room = await lounge(client, srv, ann, "room")
    theirs = await lounge(client, other_srv, ann, "theirs")
    cat = str((await server_channel(client, srv, ann, "Cat", kind="category"))["id"])
    crew = (await factories.group(client, ann, ben))["id"]
    await voice_join(pool, ben, room)
    url = srv.url(f"/members/{ben.id}/voice")
    for to, status in (
        (theirs, 400),
        (cat, 400),
        (crew, 400),
        (srv.general, 400),
        (str(uuid.uuid4()), 404),
    ):
        got = await client.patch(url, headers=ann.headers, json={"channel_id": to})
        assert got.status_code in (status, 403, 404), (to, got.text)
        assert set(got.json()) >= {"code", "message"}
    for body in (
        {"channel_id": "nope"},
        {"mute": "yes"},
        {"mute": None},
        {"deaf": 1},
        [],
        "x",
        {"channel_id": 5},
        {"channel_id": ["a"]},
    ):
        got = await client.patch(url, headers=ann.headers, json=body)
        assert 400 <= got.status_code < 500, (body, got.text)
        assert set(got.json()) >= {"code", "message"}
    for who in ("nope", "0", str(uuid.uuid4()) + "x", "@you"):
        got = await client.patch(srv.url(f"/members/{who}/voice"), headers=ann.headers,
                                 json={"mute": True})  # fmt: skip
        assert 400 <= got.status_code < 500, (who, got.text)
    assert await in_voice(client, ann, room) == [str(ben.id)]


async def test_a_group_call_holds_the_mesh_limit_at_most(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    people = [await make_user(f"p{i}") for i in range(10)]
    crew = (await factories.group(client, people[0], *people[1:]))["id"]
    for who in people[: voice.MESH_LIMIT]:
        await voice_join(pool, who, crew)
    assert await voice_refusal(pool, people[voice.MESH_LIMIT], crew) == (403, "CHANNEL_FULL")


async def test_a_transfer_ends_the_old_owners_state_where_only_ownership_let_them_in(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    room = await lounge(client, srv, ann, "staff")
    await override(client, ann, room, "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    await voice_join(pool, ann, room)
    gave = await client.post(srv.url("/transfer"), headers=ann.headers,
                             json={"owner_id": str(ben.id)})  # fmt: skip
    assert gave.status_code in (200, 204), gave.text
    assert await in_voice(client, ben, room) == []
