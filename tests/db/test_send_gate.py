"""The send path's two statements: what the first saw is checked again by the second."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from tests.db.test_schema import make_user
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import conversations as conversations_q
from xfchat.db.queries import messages_send as send_q


async def test_a_participant_removed_between_the_statements_writes_nothing(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user(conn, "ann"), await make_user(conn, "ben")
    group = await conversations_q.insert_group(conn, name="g", owner_id=ann.id)
    await channels_q.insert_conversation_participants(
        conn, channel_id=group.id, user_ids=[ann.id, ben.id]
    )
    async with conn.transaction():
        state = await send_q.prepare_send_batch(
            conn,
            channel_id=group.id,
            authors=[ben.id],
            reply_ids=[],
            mentioned=[],
            ids=[],
            nonce_authors=[],
            nonces=[],
            buckets=[],
            periods=[],
            counts=[],
        )
        assert state is not None and ben.id in state.allowed
        async with pool.acquire() as other:  # the owner removes ben meanwhile
            remover = other.transaction()
            await remover.start()
            await conversations_q.delete_participant(other, channel_id=group.id, user_id=ben.id)
            await remover.commit()
        last = await send_q.insert_messages_and_events(
            conn,
            channel_id=group.id,
            created_at=datetime.now(UTC),
            ids=[uuid.uuid4()],
            author_ids=[ben.id],
            contents=["too late"],
            nonces=[None],
            reply_to_ids=[None],
            mentions=[[]],
            event_datas=['{"id":"x","seq":0,"content":"too late"}'],
            notify_channel="test",
        )
        assert last is None
    assert await conn.fetchval("SELECT count(*) FROM messages") == 0
    assert await conn.fetchval("SELECT last_seq FROM channels WHERE id = $1", group.id) == 0
    assert await conn.fetchval("SELECT count(*) FROM events") == 0
