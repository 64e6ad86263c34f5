"""Keeping the event log to its retention period."""

from __future__ import annotations

import asyncpg

from xfchat.db.queries import events as events_q

BATCH = 5000


async def prune_event_log(pool: asyncpg.Pool, retention_days: float) -> int:
    """Delete events older than the retention, a batch at a time (short transactions);
    resuming from before what was removed then gets a resync instead of a silent gap."""
    removed = 0
    while True:
        async with pool.acquire() as conn:
            n = await events_q.prune_events(conn, older_than_s=retention_days * 86400, batch=BATCH)
        removed += n
        if n < BATCH:
            return removed
