"""What the tests of mutes and of notification settings share: the targets one may not
see, and every way of leaving a server or a group (both are set on what you see, and go
when you leave it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser, TestUser
from xfchat.domain import members
from xfchat.domain.permissions import Permission

NOWHERE = "00000000-0000-4000-8000-000000000000"


async def unseen_targets(
    client: httpx.AsyncClient, make_user: MakeUser
) -> tuple[list[TestUser], list[tuple[TestUser, str, str, str]]]:
    """([ben, zed], cases): (who, kind, id, the 404's code) of targets who may not see,
    each to be answered as NOWHERE is."""
    ann, ben, zed = await make_user("ann"), await make_user("ben"), await make_user("zed")
    srv = await factories.community(client, ann, ben)
    secret = await factories.server_channel(client, srv, ann, "secret")
    hidden = await factories.override(
        client, ann, secret["id"], "role", srv.everyone_role, deny=int(Permission.VIEW_CHANNEL)
    )
    assert hidden.status_code == 200, hidden.text
    talk = (await factories.direct(client, ann, ben))["id"]
    return [ben, zed], [
        (zed, "channel", srv.general, "CHANNEL_NOT_FOUND"),  # not a member
        (zed, "channel", talk, "CHANNEL_NOT_FOUND"),  # not a participant
        (ben, "channel", secret["id"], "CHANNEL_NOT_FOUND"),  # hidden from ben
        (zed, "server", srv.id, "SERVER_NOT_FOUND"),
        (ben, "server", srv.general, "SERVER_NOT_FOUND"),  # a channel is not a server
        (ben, "channel", srv.id, "CHANNEL_NOT_FOUND"),
    ]


async def leave_server_every_way(
    client: httpx.AsyncClient, srv: factories.Community, owner: TestUser, *who: TestUser
) -> None:
    """The first of `who` leaves the server, the second is kicked, the third banned."""
    leaver, kicked, banned = who
    assert (await client.delete(srv.url("/members/@me"), headers=leaver.headers)).status_code == 204
    out = await client.delete(srv.url(f"/members/{kicked.id}"), headers=owner.headers)
    assert out.status_code == 204, out.text
    ban = await client.put(srv.url(f"/bans/{banned.id}"), headers=owner.headers, json={})
    assert ban.status_code == 204, ban.text


async def leave_group_both_ways(
    client: httpx.AsyncClient, group: str, owner: TestUser, leaver: TestUser, removed: TestUser
) -> None:
    left = await client.delete(
        f"/api/conversations/{group}/participants/@me", headers=leaver.headers
    )
    assert left.status_code == 204, left.text
    out = await client.delete(
        f"/api/conversations/{group}/participants/{removed.id}", headers=owner.headers
    )
    assert out.status_code == 204, out.text


async def put_racing_a_leave(
    pool: asyncpg.Pool,
    leaver: TestUser,
    srv: factories.Community,
    put: Callable[[], Awaitable[httpx.Response]],
) -> httpx.Response:
    """`put`'s answer when it is made while `leaver`'s leave of `srv` is written and not
    yet committed (it waits for the leave, which then commits)."""
    async with pool.acquire() as held:
        leaving = held.transaction()
        await leaving.start()
        await members.leave_server(held, leaver.actor, UUID(srv.id))
        answer = asyncio.create_task(put())
        await factories.lock_waiters(pool)
        await leaving.commit()
    return await answer


Put = Callable[[httpx.AsyncClient, TestUser, str, object], Awaitable[httpx.Response]]
Listed = Callable[[httpx.AsyncClient, TestUser], Awaitable[list[dict[str, Any]]]]


async def leaving_drops_them(
    client: httpx.AsyncClient, make_user: MakeUser, put: Put, listed: Listed
) -> None:
    """What `put` sets on a server, its #general and a group, set by members who then
    leave them every way, is gone from `listed` with them (and not back on rejoining)."""
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    srv = await factories.community(client, ann, ben, cid, dan)
    group = (await factories.group(client, ann, ben, cid))["id"]
    for who in (ben, cid, dan):
        assert (await put(client, who, "server", srv.id)).status_code == 200
        assert (await put(client, who, "channel", srv.general)).status_code == 200
    for who in (ben, cid):
        assert (await put(client, who, "channel", group)).status_code == 200

    await leave_server_every_way(client, srv, ann, ben, cid, dan)
    assert [m["id"] for m in await listed(client, ben)] == [group]
    assert [m["id"] for m in await listed(client, cid)] == [group]
    assert await listed(client, dan) == []

    await leave_group_both_ways(client, group, ann, ben, cid)
    assert await listed(client, ben) == [] and await listed(client, cid) == []
    # Back in, nothing of before is there.
    assert (await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)).status_code == 201
    assert await listed(client, ben) == []
