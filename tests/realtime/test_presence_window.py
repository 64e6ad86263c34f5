"""A presence change between a connection's first read (its ready) and its going live."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests import factories
from tests.factories import MakeUser, TestUser
from tests.realtime.test_hub import drain
from xfchat.realtime.feeds import open_user_feed
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Subscriber


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
            shown = [p["status"] for p in start.state["presences"] if p["user_id"] == str(ann.id)]
            assert shown == ["online"]  # (the ready's, before the change)
            # ann's own connection hears it: the hub has handed the signal over.
            await _set_status(client, ann, "dnd", herself)
            got = [d for d in await drain(sub, first_s=1) if d.type == "presence.updated"]
            assert [d.data["status"] for d in got if d.data["user_id"] == str(ann.id)] == ["dnd"]
        finally:
            sub.release()
    finally:
        herself.release()


async def _set_status(
    client: httpx.AsyncClient, who: TestUser, status: str, hears: Subscriber
) -> None:
    """`who` sets a status, and `hears` (their own feed) is handed its signal."""
    changed = await client.put(
        "/api/users/@me/presence", headers=who.headers, json={"status": status}
    )
    assert changed.status_code in (200, 204), changed.text
    while True:
        item = await hears.next(idle_s=10)
        assert item is not None
        if item[0].type == "presence.updated" and item[0].data["status"] == status:
            return


async def test_a_presence_change_during_the_read_again_is_not_undone_by_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A review's suspicion, made to happen: a feed live at last reads the presences
    again (a change went by before it was live), and a change handed over while that
    read runs reaches it live; the read, begun before that change committed, then
    offered the older status after it, and the friend showed as they no longer were.
    The read is made again while changes go by during it."""
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    await factories.befriend(ann, ben)
    await factories.direct(client, ann, ben)  # (as an accepted request opens: it carries
    # their presence live)
    herself, _, _ = await open_user_feed(hub, pool, ann.actor, None)
    try:
        await drain(herself)
        sub, _, _ = await open_user_feed(hub, pool, ben.actor, None)
        try:
            await _set_status(client, ann, "idle", herself)  # (before ben's feed is live)
            read = hub.read_presences
            reads = 0

            async def read_while_it_changes(user_id: UUID) -> Any:
                nonlocal reads
                reads += 1
                seen = await read(user_id)
                if reads == 1:  # (committed after the read: handed over during it)
                    await _set_status(client, ann, "dnd", herself)
                return seen

            monkeypatch.setattr(hub, "read_presences", read_while_it_changes)
            got = [d for d in await drain(sub, first_s=1) if d.type == "presence.updated"]
            statuses = [d.data["status"] for d in got if d.data["user_id"] == str(ann.id)]
            assert statuses == ["dnd", "dnd"], statuses  # (live, then the read again)
            assert reads >= 2  # (made again; more when other changes went by too)
        finally:
            sub.release()
    finally:
        herself.release()
