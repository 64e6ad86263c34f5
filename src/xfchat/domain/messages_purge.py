"""Deleting the messages of channels about to be deleted (a server channel, a server, a
group its last participant leaves), a bounded number per statement.

Deleted with the channel's row, they were one statement however many there were (about
6.6 s for 100,000 messages on a 2-core box), so a channel or a server past half a
million could never be deleted (every try outlasted the statement timeout: 503
DATABASE_UNAVAILABLE), nor could the last participant leave such a group, nor delete
their account. Now each statement deletes PURGE_BATCH of them, in the deletion's own
transaction: it still commits whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages as messages_q

PURGE_BATCH = 1000  # messages per statement (tens of milliseconds, files and all)


async def purge_messages(conn: asyncpg.Connection, channel_ids: Iterable[UUID]) -> int:
    """Delete every message of these channels, in the caller's transaction (which then
    deletes the channels), PURGE_BATCH per statement; how many."""
    purged = 0
    for channel_id in channel_ids:
        while True:
            n = await messages_q.delete_newest_messages(
                conn, channel_id=channel_id, limit=PURGE_BATCH
            )
            purged += n
            if n < PURGE_BATCH:
                break
    return purged
