"""A presence change between a connection's first read (its ready) and its going live."""

from __future__ import annotations

import asyncpg
import httpx
from fastapi import FastAPI

from tests import factories
from tests.factories import MakeUser
from tests.realtime.test_hub import drain
from xfchat.realtime.feeds import open_user_feed
from xfchat.realtime.hub import Hub


async def test_a_presence_change_right_after_the_ready_still_arrives(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    await factories.befriend(ann, ben)
    herself, _, _ = await open_user_feed(hub, pool, ann.actor, None)
    try:
        await drain(herself)
        sub, _, start = await open_user_feed(hub, pool, ben.actor, None)
        try:
            assert start.state is not None
            before = start.state["presences"]
            changed = await client.put(
                "/api/users/@me/presence", headers=ann.headers, json={"status": "dnd"}
            )
            assert changed.status_code in (200, 204), changed.text
            # ann's own connection hears it: the hub has handed the signal over.
            while True:
                item = await herself.next(idle_s=10)
                assert item is not None
                if item[0].type == "presence.updated" and item[0].data["status"] == "dnd":
                    break
            got = [d for d in await drain(sub, first_s=1) if d.type == "presence.updated"]
            print(before, [d.data for d in got])
            assert [d.data["status"] for d in got if d.data["user_id"] == str(ann.id)] == ["dnd"]
        finally:
            sub.release()
    finally:
        herself.release()
