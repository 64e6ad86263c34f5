"""Deleting the messages and read positions of channels about to be deleted (a server
channel, a server, a group its last participant leaves), a bounded number per
statement.

Deleted with the channel's row, they were one statement however many there were (about
6.6 s for 100,000 messages on a 2-core box), so a channel or a server past half a
million could never be deleted (every try outlasted the statement timeout: 503
DATABASE_UNAVAILABLE), nor could the last participant leave such a group, nor delete
their account. The read positions are a row for each member who read or wrote in each
channel: a server of 10,000 members and 200 channels can hold two million. Now each
statement deletes PURGE_BATCH messages or READ_STATES_BATCH positions, in the
deletion's own transaction: it still commits whole or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages as messages_q

PURGE_BATCH = 1000  # messages per statement (tens of milliseconds, files and all)
READ_STATES_BATCH = 10_000  # read positions per statement


async def purge_channels(conn: asyncpg.Connection, channel_ids: Iterable[UUID]) -> int:
    """Delete every message and read position of these channels, in the caller's
    transaction (which then deletes the channels), a batch per statement; how many
    messages."""
    purged = 0
    for channel_id in channel_ids:
        purged += await _all(conn, messages_q.delete_newest_messages, channel_id, PURGE_BATCH)
        await _all(conn, messages_q.delete_read_states, channel_id, READ_STATES_BATCH)
    return purged


async def _all(
    conn: asyncpg.Connection,
    delete: Callable[..., Awaitable[int]],
    channel_id: UUID,
    batch: int,
) -> int:
    """`delete` a batch of the channel's rows at a time until one is short; how many."""
    deleted = 0
    while True:
        n = await delete(conn, channel_id=channel_id, limit=batch)
        deleted += n
        if n < batch:
            return deleted
