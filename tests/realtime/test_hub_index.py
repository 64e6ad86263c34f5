"""A subscriber the hub closes as a slow consumer in the middle of a commit of its
user's stream is forgotten whole: no later event of that commit puts it back in the
hub's index, where it stayed (with its queue) for as long as the process ran."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import MakeUser, community, override, role, say
from tests.realtime.test_hub import drain
from xfchat.db.queries import event_log
from xfchat.domain.permissions import Permission
from xfchat.realtime.feeds import open_user_feed
from xfchat.realtime.hub import Hub
from xfchat.settings import Settings

VIEW = int(Permission.VIEW_CHANNEL)
QUEUE = 10  # XFCHAT_REALTIME_QUEUE's least


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url, realtime_queue=QUEUE)


async def test_a_slow_consumer_closed_inside_a_commit_leaves_the_index(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    lobby, staff = [
        (await client.post(srv.url("/channels"), headers=ann.headers, json={"name": n})).json()[
            "id"
        ]
        for n in ("lobby", "staff")
    ]
    staff_role = await role(client, srv, ann, "staff", 0)
    # Without the role ben sees #lobby and not #staff; with it, the other way round: giving
    # it is one commit of ben's stream, channel.hidden (#lobby) then channel.revealed.
    for channel, target, allow, deny in (
        (lobby, staff_role, 0, VIEW),
        (staff, srv.everyone_role, 0, VIEW),
        (staff, staff_role, VIEW, 0),
    ):
        assert (
            await override(client, ann, channel, "role", target, allow, deny)
        ).status_code == 200

    sub, _, _ = await open_user_feed(hub, pool, ben.actor, None)
    try:
        await drain(sub)
        assert sub.live and not sub.queue
        for n in range(QUEUE):  # ben reads none of them: his queue is full
            await say(client, ann, srv.general, f"unread {n}")
        given = await client.put(
            srv.url(f"/members/{ben.id}/roles/{staff_role}"), headers=ann.headers
        )
        assert given.status_code == 204, given.text
        await say(client, ann, staff, "after")  # (a commit after the grant's)
        async with pool.acquire() as conn:
            head = await event_log.get_log_head(conn)
        async with asyncio.timeout(10):
            while hub.last_g < head.g:  # (every commit so far handed over)
                await asyncio.sleep(0.01)
        assert sub.closed == "slow_consumer"  # at the hide, its queue full
    finally:
        sub.release()
    holding = [stream for stream, subs in hub.index.items() if sub in subs]
    assert holding == [], f"a closed subscriber is still indexed under {holding}"
