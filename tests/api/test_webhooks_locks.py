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


async def blocked_by(conn: asyncpg.Connection, pid: int, *pending: asyncio.Future[Any]) -> int:
    """The session waiting for a lock `pid` holds, once there is one (or 0 when one of
    `pending` is done first), polling rather than sleeping a guess."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(p.done() for p in pending):
        found = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
        )
        if found:
            return int(found)
        await asyncio.sleep(0.01)
    return 0


async def test_a_change_finding_its_webhook_moved_lets_go_of_it_before_the_next_channel(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: a change that found its webhook moved (to #deploys) since it was read (in
    #builds) kept the webhook's row locked while it took the new channel's: the order
    the channel's deletion takes the other way (the channel's row, then its webhooks'),
    so a deletion of #deploys meanwhile deadlocked with it (one of them 503). Forced: the
    change waits for #builds' row, the webhook is moved, the deletion of #deploys waits
    on a read position there after taking the channel's row; then #builds is let go (the
    change finds the webhook moved and waits for #deploys), then the read position. Now
    each try is a savepoint: the webhook's row is let go first, the deletion takes it
    with its channel, and the change finds nothing (404)."""
    ann, mod = [await make_user(n) for n in ("ann", "mod")]
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "hooks", int(P.MANAGE_WEBHOOKS), mod)
    builds, deploys = [
        str((await factories.server_channel(client, srv, ann, name))["id"])
        for name in ("builds", "deploys")
    ]
    made = await client.post(
        f"/api/channels/{builds}/webhooks", headers=mod.headers, json={"name": "CI"}
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    await factories.say(client, ann, deploys, "hello")  # (ann's read position there)
    first, second = [await asyncpg.connect(settings.database_url) for _ in range(2)]
    try:
        holding_builds, holding_position = first.transaction(), second.transaction()
        await holding_builds.start()
        await first.execute("SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", uuid.UUID(builds))
        renaming = asyncio.ensure_future(
            client.patch(f"/api/webhooks/{hook['id']}", headers=mod.headers, json={"name": "CD"})
        )
        renamer = await blocked_by(second, first.get_server_pid(), renaming)
        assert renamer, "the rename did not wait for #builds"
        await second.execute(
            "UPDATE webhooks SET channel_id = $1 WHERE id = $2",
            uuid.UUID(deploys),
            uuid.UUID(hook["id"]),
        )
        await holding_position.start()
        await second.execute(
            "SELECT 1 FROM read_states WHERE channel_id = $1 FOR KEY SHARE", uuid.UUID(deploys)
        )
        deleting = asyncio.ensure_future(
            client.delete(f"/api/channels/{deploys}", headers=ann.headers)
        )
        deleter = await blocked_by(first, second.get_server_pid(), deleting)
        assert deleter, "the deletion did not wait on the read position"
        await holding_builds.rollback()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not renaming.done():
            blockers = await first.fetchval("SELECT pg_blocking_pids($1)", renamer)
            if deleter in blockers:
                break  # (the rename found the webhook moved, and waits for #deploys)
            await asyncio.sleep(0.01)
        await holding_position.rollback()
        deleted, renamed = await asyncio.wait_for(asyncio.gather(deleting, renaming), 30)
    finally:
        await first.close()
        await second.close()
    assert deleted.status_code == 204, deleted.text
    assert renamed.status_code == 404 and renamed.json()["code"] == "WEBHOOK_NOT_FOUND"
