"""Re-indexing a server's earlier messages after a change of its search language, a
bounded range of them a transaction (migration 0056).

Re-indexed inside the change's request, they held its transaction as long as the whole
server took (about 0.1 ms a chat line, 15 ms one of 4,000 characters): a server whose
messages took longer than the statement timeout could not change its language at all.
Now the change (domain/servers.py, update_server) queues each of the server's channels
that holds a message in `search_reindexes`, and `reindex_queued_channels` (a periodic
job, every REINDEX_EVERY_S seconds) re-indexes REINDEX_BATCH sequence numbers of one
channel a transaction until none is queued. The messages sent after the change are
written in the new language at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import search as search_q

# Sequence numbers of a channel per transaction: at most about 3 s of a database's CPU
# for 200 messages of 4,000 characters, 20 ms for chat lines.
REINDEX_BATCH = 200
REINDEX_EVERY_S = 5  # (the cluster's period, of one process: tasks.every)
REINDEX_JOB = "reindex-search"  # (its name among the periodic jobs: periodic_runs)
log = logging.getLogger("xfchat.search")


@dataclass
class ReindexCounts:
    """What this process's re-indexing did (the metrics: api/metrics.py)."""

    messages: int = 0  # re-indexed
    failures: int = 0  # batches that failed (each logged)


async def reindex_queued_channels(pool: asyncpg.Pool, counts: ReindexCounts | None = None) -> int:
    """Re-index the messages of the channels queued in `search_reindexes` in their
    server's language, REINDEX_BATCH sequence numbers a transaction and a connection
    each (live requests get the pool in between), the longest waiting channel first; a
    channel another process holds is left to it. A batch that fails (the statement
    timeout, say) is logged and its channel left for the next run; the others go on. How many messages were re-indexed."""
    done = 0
    passed: list[UUID] = []
    while True:
        job: search_q.QueuedReindex | None = None
        try:
            async with pool.acquire() as conn, conn.transaction():
                job = await search_q.claim_reindex(conn, passing=passed)
                if job is None:
                    break
                through = min(job.done_seq + REINDEX_BATCH, job.through_seq)
                n = await search_q.reindex_range(conn, job=job, through=through)
        except asyncpg.PostgresError:
            if job is None:
                raise
            passed.append(job.channel_id)
            if counts is not None:
                counts.failures += 1
            log.warning("re-indexing channel %s failed", job.channel_id, exc_info=True)
            continue
        done += n
        if counts is not None:
            counts.messages += n
    if done:
        log.info("re-indexed %s message(s) in their server's search language", done)
    return done
