"""Webhooks against their channel's deletion: one lock order (the channel's row, then
the webhook's), so neither a management change nor an execution deadlocks with it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser, community, role
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


async def until_waiting(conn: asyncpg.Connection, n: int, *pending: asyncio.Future[Any]) -> int:
    """Once `n` sessions of this database wait for a lock, or one of `pending` is done
    (it did not wait), polling pg_stat_activity rather than sleeping a guess."""
    deadline = time.monotonic() + 10
    waiting = 0
    while time.monotonic() < deadline and not any(p.done() for p in pending):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= n:
            break
        await asyncio.sleep(0.01)
    return int(waiting)


async def free_webhook(conn: asyncpg.Connection, webhook_id: str) -> None:
    """The webhook's row is not held by a request that waits for its channel's (a
    cascade from the channel's deletion would wait for it: the deadlock)."""
    await conn.execute(
        "SELECT 1 FROM webhooks WHERE id = $1 FOR UPDATE NOWAIT", uuid.UUID(webhook_id)
    )


async def test_a_webhook_change_racing_its_channels_deletion_does_not_deadlock(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: a change of a webhook locked its row, then its channel's (FOR KEY SHARE);
    the channel's deletion locks the channel's row (FOR UPDATE), then, cascading, the
    webhook's: a deadlock, the change a 500. Forced here: the deletion is held, after
    it took the channel's row, on a read position another session keeps locked; the
    rename comes meanwhile; then the read position is let go. Now the change takes the
    channel's row first: it waits for the deletion and finds the webhook gone (404)."""
    ann, mod = [await make_user(n) for n in ("ann", "mod")]
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "hooks", int(P.MANAGE_WEBHOOKS), mod)
    channel = str((await factories.server_channel(client, srv, ann, "builds"))["id"])
    made = await client.post(
        f"/api/channels/{channel}/webhooks", headers=mod.headers, json={"name": "CI"}
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    await factories.say(client, ann, channel, "hello")  # (ann's read position there)
    other = await asyncpg.connect(settings.database_url)
    try:
        tx = other.transaction()
        await tx.start()
        held = await other.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM read_states WHERE channel_id = $1"
            " FOR KEY SHARE) s",
            uuid.UUID(channel),
        )
        assert held == 1
        deleting = asyncio.ensure_future(
            client.delete(f"/api/channels/{channel}", headers=ann.headers)
        )
        assert await until_waiting(other, 1, deleting) == 1  # (the channel's row taken)
        renaming = asyncio.ensure_future(
            client.patch(f"/api/webhooks/{hook['id']}", headers=mod.headers, json={"name": "CD"})
        )
        assert await until_waiting(other, 2, deleting, renaming) == 2
        await free_webhook(other, hook["id"])
        await tx.rollback()
        deleted, renamed = await asyncio.wait_for(asyncio.gather(deleting, renaming), 30)
    finally:
        await other.close()
    assert deleted.status_code == 204, deleted.text
    assert renamed.status_code == 404 and renamed.json()["code"] == "WEBHOOK_NOT_FOUND"


async def test_an_execution_racing_its_channels_deletion_does_not_deadlock(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """As above, for a post with the webhook's token: it took the webhook's row FOR
    SHARE, then its channel's; now the channel's first, and the post is a 404."""
    (ann,) = [await make_user("ann")]
    srv = await community(client, ann)
    channel = str((await factories.server_channel(client, srv, ann, "builds"))["id"])
    made = await client.post(
        f"/api/channels/{channel}/webhooks", headers=ann.headers, json={"name": "CI"}
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    await factories.say(client, ann, channel, "hello")
    other = await asyncpg.connect(settings.database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "SELECT 1 FROM read_states WHERE channel_id = $1 FOR KEY SHARE", uuid.UUID(channel)
        )
        deleting = asyncio.ensure_future(
            client.delete(f"/api/channels/{channel}", headers=ann.headers)
        )
        assert await until_waiting(other, 1, deleting) == 1
        posting = asyncio.ensure_future(
            client.post(f"/api/webhooks/{hook['id']}/{hook['token']}", json={"content": "x"})
        )
        assert await until_waiting(other, 2, deleting, posting) == 2
        await free_webhook(other, hook["id"])
        await tx.rollback()
        deleted, posted = await asyncio.wait_for(asyncio.gather(deleting, posting), 30)
    finally:
        await other.close()
    assert deleted.status_code == 204, deleted.text
    assert posted.status_code == 404 and posted.json()["code"] == "WEBHOOK_NOT_FOUND"
