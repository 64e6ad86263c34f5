"""Deleting what a deleted channel (a server channel, a server's every channel, a group
its last participant leaves) leaves behind, a bounded number per statement.

The read positions go in the deletion's own transaction (a row for each member who
read or wrote in the channel: a server of 10,000 members and 200 channels can hold
two million), READ_STATES_BATCH a statement.

The messages go after it (migration 0055). Deleted with the channel, they held the
deletion's transaction, and the server's row it locks, about 5,700 messages a second:
a channel of 150,000 kept its server's joins, role and channel changes and voice moves
waiting 26 s, and past about 170,000 made them fail at the 30 s lock wait. Now the
deletion leaves them without a channel (no route shows such a message: its channel's
access facts, which every read of a message goes through, are none) and a trigger
queues the channel in `channel_purges`; `purge_deleted_channels` (a periodic job, every
PURGE_EVERY_S seconds) deletes PURGE_BATCH of them a transaction, newest first, until
none is left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import messages as messages_q

PURGE_BATCH = 1000  # messages per transaction (tens of milliseconds, files and all)
READ_STATES_BATCH = 10_000  # read positions per statement
# How often the purge runs (the cluster's period, of one process: tasks.every). Their files
# leave their uploaders' quota with it.
PURGE_EVERY_S = 10
PURGE_JOB = "purge-deleted-channels"  # (its name among the periodic jobs: periodic_runs)
log = logging.getLogger("xfchat.purge")


async def purge_channels(conn: asyncpg.Connection, channel_ids: Iterable[UUID]) -> None:
    """Lock these channels' rows, then delete every read position of them, in the
    caller's transaction (which then deletes the channels), a batch of all of them per
    statement. (Their messages are queued by the deletion of their rows and purged
    after it: purge_deleted_channels.) The rows first, as every writer of a channel
    takes them: a send holds its channel's FOR KEY SHARE and then writes its author's
    read position, so a deletion that took the read positions first, then waited for
    the channel's row, deadlocked with it (a 503 for one of them, 1 run in 7 of the
    racing test under a loaded box)."""
    ids = list(channel_ids)
    if ids:
        await channels_q.lock_channels(conn, channel_ids=ids, server_ids=[])
    while ids and (
        await messages_q.delete_read_states(conn, channel_ids=ids, limit=READ_STATES_BATCH)
        == READ_STATES_BATCH
    ):
        pass


@dataclass
class PurgeCounts:
    """What this process's purges did (the metrics: api/metrics.py)."""

    messages: int = 0  # purged
    failures: int = 0  # batches that failed (each logged)


async def purge_deleted_channels(pool: asyncpg.Pool, counts: PurgeCounts | None = None) -> int:
    """Delete the messages (with their files' attachments, reactions, edits and mention
    rows) of the deleted channels queued in `channel_purges`, PURGE_BATCH a transaction
    and a connection each (live requests get the pool in between), newest first, and
    each channel's place in the queue with its last batch; a channel another process is
    purging is left to it. A batch that fails (past the statement timeout: a thousand
    messages may hold a thousand large files) is tried again a tenth the size, and each
    batch of that channel that passes doubles it again, up to PURGE_BATCH; a channel
    whose batch of one message fails goes to the back of the queue, and the others go
    on. How many messages."""
    purged = 0
    passed: list[UUID] = []  # (failed this run: tried again at the next)
    shrunk: dict[UUID, int] = {}  # the channels whose batch failed: the size to try
    while True:
        channel_id: UUID | None = None
        batch = PURGE_BATCH
        try:
            async with pool.acquire() as conn, conn.transaction():
                channel_id = await messages_q.claim_channel_purge(conn, passing=passed)
                if channel_id is None:
                    break
                batch = shrunk.get(channel_id, PURGE_BATCH)
                n = await messages_q.delete_newest_messages(
                    conn, channel_id=channel_id, limit=batch
                )
                if n < batch:
                    await messages_q.end_channel_purge(conn, channel_id=channel_id)
        except asyncpg.PostgresError:
            if channel_id is None:
                raise
            if counts is not None:
                counts.failures += 1
            log.warning(
                "purge of deleted channel %s failed, %s message(s) a batch",
                channel_id,
                batch,
                exc_info=True,
            )
            if batch > 1:
                shrunk[channel_id] = max(1, batch // 10)
            else:
                passed.append(channel_id)
                async with pool.acquire() as conn:
                    await messages_q.requeue_channel_purge(conn, channel_id=channel_id)
            continue
        purged += n
        if counts is not None:
            counts.messages += n
        if channel_id in shrunk:
            shrunk[channel_id] = min(PURGE_BATCH, 2 * batch)
    if purged:
        log.info("purged %s message(s) of deleted channels", purged)
    return purged
