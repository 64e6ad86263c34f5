"""Keeping the event log to its retention period."""

from __future__ import annotations

import asyncpg

from xfchat.db.queries import event_log as events_q

BATCH = 500  # streams per round


async def prune_event_log(pool: asyncpg.Pool, retention_days: float) -> int:
    """Delete events older than the retention, one stream per statement (short,
    single-lock transactions); resuming from before what was removed then gets a resync
    instead of a silent gap."""
    older_than_s = retention_days * 86400
    removed = 0
    while True:
        async with pool.acquire() as conn:
            streams = await events_q.streams_with_old_events(
                conn, older_than_s=older_than_s, limit=BATCH
            )
            for stream_id in streams:
                removed += await events_q.prune_stream(
                    conn, stream_id=stream_id, older_than_s=older_than_s
                )
        if len(streams) < BATCH:
            return removed
