from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# xf_hit_buckets (migration 0026) counts hits in rate-limit buckets for every statement
# that counts them. A bucket's window opens at its first hit after the previous one
# ended and lasts its period, judged by the database clock, so every server process
# agrees on it (a window aligned on the epoch would reset every key at the same
# instant, mid-burst); rows are locked in bucket order, so concurrent statements cannot
# deadlock.


@dataclass(frozen=True)
class BucketState:
    hits: int  # the bucket's count in its current window, this request included
    expires_at: datetime  # when that window ends
    now: datetime  # the database clock the window was chosen by


async def hit_buckets(
    conn: asyncpg.Connection, *, buckets: list[str], periods: list[int]
) -> list[BucketState]:
    """Count one request in each of these buckets (each named once), in one autocommit
    statement on an UNLOGGED table; their states in the order given."""
    records = await conn.fetch(
        "SELECT o_hits, o_expires_at, o_clock"
        " FROM xf_hit_buckets($1::text[], $2::int[], $3::int[]) ORDER BY o_ord",
        buckets,
        periods,
        [1] * len(buckets),
    )
    return [BucketState(*r) for r in records]


async def give_back_hit(conn: asyncpg.Connection, *, bucket: str) -> None:
    """Take one hit back from a bucket's current window (a request counted up front whose
    outcome turned out not to count); nothing if the window has ended meanwhile."""
    await conn.execute(
        """
        UPDATE rate_limits SET hits = hits - 1
        WHERE bucket = $1 AND hits > 0 AND expires_at > clock_timestamp()
        """,
        bucket,
    )


async def delete_expired_buckets(conn: asyncpg.Connection) -> int:
    result = await conn.execute("DELETE FROM rate_limits WHERE expires_at < now()")
    return int(result.split()[-1])
