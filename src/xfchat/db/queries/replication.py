"""Where the primary's write-ahead log is, and how far a standby has replayed it."""

from __future__ import annotations

import asyncpg


async def get_wal_insert_lsn(conn: asyncpg.Connection) -> str:
    """The primary's WAL insert position: every commit acknowledged so far lies before
    it (the insert position, not the write one, so that an asynchronous commit not yet
    written out is covered too)."""
    return str(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))


async def get_replayed(conn: asyncpg.Connection, *, lsn: str) -> bool:
    """Whether this standby has replayed the WAL up to `lsn` (false on a server that is
    not a standby: its data is not the primary's)."""
    return bool(
        await conn.fetchval("SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn)
    )
