"""Shared by the benchmarks: a database to run against, and percentiles."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from xfchat.db.embedded import throwaway
from xfchat.db.migrate import Migrator
from xfchat.db.queries.admin import create_database


@contextlib.asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str]:
    """`url` as given (already migrated or not: migrations are applied), or a fresh
    durable local PostgreSQL (fsync on, as in production) removed afterwards."""
    if url:
        conn = await asyncpg.connect(url)
        await Migrator(conn).run()
        await conn.close()
        yield url
        return
    server, root = throwaway(prefix="xfbench-", durable=True)
    try:
        admin = await asyncpg.connect(server.url)
        await create_database(admin, name="bench")
        await admin.close()
        bench_url = server.url_for("bench")
        conn = await asyncpg.connect(bench_url)
        await Migrator(conn).run()
        await conn.close()
        yield bench_url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# The rows read so far in this transaction from the tables $1 (names): each row a
# sequential scan read and each index entry an index scan read (kept, or then removed by
# a filter), by the statistics of the transaction, so inside the functions a statement
# calls too (the unread count's walk, migration 0048), which its plan does not show.
READ_SO_FAR = """
    SELECT COALESCE(sum(pg_stat_get_xact_tuples_returned(c.oid)), 0)::bigint
    FROM pg_class c
    WHERE c.relname = ANY($1::text[])
       OR c.oid IN (SELECT i.indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                    WHERE t.relname = ANY($1::text[]))
"""

T = TypeVar("T")


async def rows_read(
    conn: asyncpg.Connection,
    run: Callable[[], Awaitable[T]],
    tables: Sequence[str] = ("messages", "message_mentions"),
) -> tuple[T, int]:
    """What `run()` returns, and how many rows it read from `tables` on `conn` (index
    entries and rows scanned, READ_SO_FAR; in one transaction, or a savepoint of the
    caller's). The tests' measure of a walk too (tests/support.py)."""
    async with conn.transaction():
        # (in this backend alone: a parallel worker's reads are in its own statistics,
        # never this transaction's, and a scan of the whole table by workers counted 0)
        await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        before = await conn.fetchval(READ_SO_FAR, list(tables))
        result = await run()
        after = await conn.fetchval(READ_SO_FAR, list(tables))
    return result, int(after - before)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(seconds: Sequence[float], unit: str) -> str:
    """Median and p99 of durations in seconds, shown in "µs" (no decimals) or "ms" (one)."""
    scale, digits = {"µs": (1e6, 0), "ms": (1e3, 1)}[unit]
    v = [s * scale for s in seconds]
    return (
        f"median {statistics.median(v):7.{digits}f} {unit}   "
        f"p99 {pct(v, 99):7.{digits}f} {unit}   (n={len(v)})"
    )


def env_url() -> str | None:
    return os.environ.get("BENCH_DATABASE_URL")
