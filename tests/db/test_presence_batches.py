"""The presence writer's batches (realtime/presence.py): a burst is written together,
and a user the database keeps refusing holds up only themselves."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from tests.factories import MakeUser
from xfchat.db.queries.locks import advisory_key
from xfchat.realtime.presence import PresenceTracker


async def registered(pool: asyncpg.Pool, process_id: uuid.UUID) -> set[uuid.UUID]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT user_id FROM presence_connections WHERE process_id = $1", process_id
        )
    return {r["user_id"] for r in rows}


async def until_registered(
    pool: asyncpg.Pool, process_id: uuid.UUID, want: set[uuid.UUID], timeout: float = 15
) -> None:
    async with asyncio.timeout(timeout):
        while await registered(pool, process_id) != want:
            await asyncio.sleep(0.05)


async def test_a_user_the_database_keeps_refusing_holds_up_only_themselves(
    pool: asyncpg.Pool, db_url: str, make_user: MakeUser
) -> None:
    users = sorted([(await make_user(f"p{i}")).id for i in range(4)])
    blocked = users[1]  # not the first in lock order: those after it must not wait
    # The tracker's statements give up on a lock after 200 ms (a refusal by the
    # database, its connection still up), where the default would wait.
    writer_pool = await asyncpg.create_pool(
        db_url, min_size=1, max_size=2, server_settings={"lock_timeout": "200"}
    )
    tracker = PresenceTracker(writer_pool, interval_s=60, timeout_s=30)
    await tracker.start()
    try:
        holder = await asyncpg.connect(db_url)  # (not the test's pool: it polls meanwhile)
        try:
            async with holder.transaction():
                # Another transaction holds the blocked user's presence lock (as a status
                # change of theirs would).
                await holder.execute(
                    "SELECT pg_advisory_xact_lock($1)", advisory_key(b"presence", blocked)
                )
                for user in users:
                    tracker.connected(user)
                await until_registered(pool, tracker.process_id, set(users) - {blocked})
                assert not await tracker.settled(0.3)  # the blocked one is still to write
        finally:
            await holder.close()
        # The lock is gone: the next retry writes them.
        await until_registered(pool, tracker.process_id, set(users))
        assert await tracker.settled(10)
        for user in users:  # and all of them leave together
            tracker.disconnected(user)
        await until_registered(pool, tracker.process_id, set())
    finally:
        await tracker.stop()
        await writer_pool.close()
