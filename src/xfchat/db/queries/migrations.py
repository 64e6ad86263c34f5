from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime


async def create_schema_migrations(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version      integer PRIMARY KEY,
            name         text NOT NULL,
            checksum     text NOT NULL,
            applied_at   timestamptz NOT NULL DEFAULT now(),
            execution_ms integer NOT NULL DEFAULT 0
        )
        """
    )


async def list_applied_migrations(conn: asyncpg.Connection) -> list[AppliedMigration]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
    )
    return [AppliedMigration(**dict(r)) for r in rows]


async def insert_applied_migration(
    conn: asyncpg.Connection, *, version: int, name: str, checksum: str, execution_ms: int
) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, execution_ms)"
        " VALUES ($1, $2, $3, $4)",
        version,
        name,
        checksum,
        execution_ms,
    )


async def delete_applied_migration(conn: asyncpg.Connection, *, version: int) -> None:
    await conn.execute("DELETE FROM schema_migrations WHERE version = $1", version)


async def set_statement_timeout_off(conn: asyncpg.Connection) -> None:
    """No statement timeout for this session until `reset_statement_timeout`."""
    await conn.execute("SET statement_timeout = 0")


async def reset_statement_timeout(conn: asyncpg.Connection) -> None:
    """The session's statement timeout and lock timeout back to what the connection
    started with."""
    await conn.execute("RESET statement_timeout; RESET lock_timeout")


async def set_lock_timeout(conn: asyncpg.Connection, *, lock_timeout_ms: int) -> None:
    """For this session, until `reset_statement_timeout`: wait at most `lock_timeout_ms`
    for each lock (0: without end)."""
    await conn.execute("SELECT set_config('lock_timeout', $1, false)", str(lock_timeout_ms))


async def set_local_migration_timeouts(conn: asyncpg.Connection, *, lock_timeout_ms: int) -> None:
    """For the rest of the current transaction: no statement timeout (a migration is no
    request, and may rewrite a large table), and a bounded wait for each lock (a
    migration's ACCESS EXCLUSIVE request queued behind a long transaction would stall
    every query of the running servers behind it)."""
    await conn.execute(
        "SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', $1, true)",
        str(lock_timeout_ms),
    )


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    role: str | None
    state: str | None  # (None, and xact_start too: a session of a role this one may
    xact_start: datetime | None  # not see the activity of, without pg_read_all_stats)


async def list_lock_holders(conn: asyncpg.Connection, *, held_s: float) -> list[LockHolder]:
    """Other sessions of this database that hold a lock on a table and whose transaction
    has been open for `held_s` seconds or more (what a migration's lock waited for),
    oldest first; and those of other roles, whose transaction's age this role may not
    see, last. (The waiter's own pg_blocking_pids is gone once its wait timed out.)"""
    rows = await conn.fetch(
        """
        SELECT a.pid, a.application_name, a.usename AS role, a.state, a.xact_start
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND a.datname = current_database()
          AND (a.xact_start <= now() - make_interval(secs => $1)
               OR a.state IS NULL)
          AND EXISTS (SELECT 1 FROM pg_locks l
                      WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
                        AND l.database = (SELECT oid FROM pg_database
                                          WHERE datname = current_database()))
        ORDER BY a.xact_start NULLS LAST
        LIMIT 5
        """,
        held_s,
    )
    return [LockHolder(**dict(r)) for r in rows]


@dataclass(frozen=True)
class SessionLockHolder:
    pid: int
    application_name: str | None  # (None: gone from pg_stat_activity meanwhile)
    role: str | None
    state: str | None  # (None, and backend_start too: a session of a role this one may
    backend_start: datetime | None  # not see the activity of, without pg_read_all_stats)


async def get_advisory_lock_holder(
    conn: asyncpg.Connection, *, key: int
) -> SessionLockHolder | None:
    """The session of this database holding the advisory lock `key` (a bigint key is
    split in pg_locks: its high half in classid, its low half in objid), if any."""
    row = await conn.fetchrow(
        """
        SELECT l.pid, a.application_name, a.usename AS role, a.state, a.backend_start
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = ($1::bigint >> 32)
          AND l.objid::bigint = ($1::bigint & 4294967295)
        LIMIT 1
        """,
        key,
    )
    return None if row is None else SessionLockHolder(**dict(row))
