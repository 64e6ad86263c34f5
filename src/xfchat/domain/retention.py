"""Keeping the event log to its retention period."""

from __future__ import annotations

import asyncpg

from xfchat.db.queries import event_log as log_q

BATCH = 1000  # commits per statement


async def prune_event_log(pool: asyncpg.Pool, retention_days: float) -> int:
    """Delete the commits older than the retention, with their events, oldest first and
    a bounded batch per statement; resuming from before what was removed then gets a
    resync instead of a silent gap."""
    older_than_s = retention_days * 86400
    removed = 0
    while True:
        async with pool.acquire() as conn:
            n = await log_q.prune_commits(conn, older_than_s=older_than_s, limit=BATCH)
        removed += n
        if n < BATCH:
            return removed
