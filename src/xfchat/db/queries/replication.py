"""Where the primary's write-ahead log is, and how far a standby has replayed it."""

from __future__ import annotations

import asyncpg

# Every commit acknowledged so far lies before this position: with synchronous commit
# (PostgreSQL's default) a commit is flushed before it is acknowledged; without it, one
# may still wait in the WAL buffers, so the insert position is taken instead.
_ACKNOWLEDGED_LSN = """
SELECT CASE WHEN current_setting('synchronous_commit') = 'off'
            THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END::text
"""


async def get_acknowledged_lsn(conn: asyncpg.Connection) -> str:
    """The primary's WAL position up to which every acknowledged commit lies."""
    return str(await conn.fetchval(_ACKNOWLEDGED_LSN))


async def get_replayed(conn: asyncpg.Connection, *, lsn: str) -> bool:
    """Whether this standby has replayed the WAL up to `lsn` (false on a server that is
    not a standby: its data is not the primary's)."""
    return bool(
        await conn.fetchval(
            "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", lsn
        )
    )
