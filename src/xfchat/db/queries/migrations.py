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
    """The session's statement timeout back to what the connection started with."""
    await conn.execute("RESET statement_timeout")
