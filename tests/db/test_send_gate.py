"""The send batch reads access in its first statement; a change of who may see the
channel that commits while that statement waits for the channel's lock is noticed."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.db.test_schema import make_user
from tests.factories import lock_waiters
from xfchat.db.queries import access as access_q
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import conversations as conversations_q
from xfchat.db.queries import messages_send as send_q


async def prepare(
    conn: asyncpg.Connection, channel_id: object, user: object
) -> send_q.SendBatchState:
    state = await send_q.prepare_send_batch(
        conn,
        channel_id=channel_id,  # type: ignore[arg-type]
        users=[user],  # type: ignore[list-item]
        reply_ids=[],
        ids=[],
        nonce_authors=[],
        nonces=[],
        buckets=[],
        periods=[],
        role_ids=[],
    )
    assert state is not None
    return state


async def test_an_access_change_committed_while_the_batch_waited_makes_it_stale(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user(conn, "ann"), await make_user(conn, "ben")
    group = await conversations_q.insert_group(conn, name="g", owner_id=ann.id)
    await channels_q.insert_conversation_participants(
        conn, channel_id=group.id, user_ids=[ann.id, ben.id]
    )
    async with pool.acquire() as remover:
        tx = remover.transaction()
        await tx.start()
        await access_q.bump_access_version(remover, channel_id=group.id)  # locks the row
        await conversations_q.delete_participant_of_all(
            remover, user_id=ben.id, channel_ids=[group.id]
        )
        async with conn.transaction():
            waiting = asyncio.create_task(prepare(conn, group.id, ben.id))
            await lock_waiters(pool)  # the batch waits for the change
            assert not waiting.done()
            await tx.commit()
            state = await asyncio.wait_for(waiting, 5)
    # Its snapshot still had ben; the version it locked says that is stale.
    assert state.current is False
    async with conn.transaction():
        fresh = await prepare(conn, group.id, ben.id)
    assert fresh.current is True
    assert [f["participant"] for f in fresh.facts] == [False]


async def test_a_batch_holding_the_lock_makes_an_access_change_wait(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    ann = await make_user(conn, "ann")
    group = await conversations_q.insert_group(conn, name="g", owner_id=ann.id)
    async with conn.transaction():
        await prepare(conn, group.id, ann.id)
        change = asyncio.create_task(_bump(pool, group.id))
        await lock_waiters(pool)
        assert not change.done()
    await asyncio.wait_for(change, 5)  # it goes through once the batch's transaction ends


async def _bump(pool: asyncpg.Pool, channel_id: object) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await access_q.bump_access_version(conn, channel_id=channel_id)  # type: ignore[arg-type]
