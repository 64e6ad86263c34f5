from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# CTEs that count hits in rate-limit buckets, shared by every statement that counts
# them. Parameters: {buckets} text[], {periods} int[] (window lengths in seconds) and
# {counts} int[] (hits to add), plus a CTE `t` with the database clock as `clock`.
# A bucket's window opens at its first hit after the previous one ended and lasts its
# period, judged by the database clock, so every server process agrees on it (a window
# aligned on the epoch would reset every key at the same instant, mid-burst). Defines
# `w` (each bucket with its period and its place `ord` in the arrays) and `hits` (each
# bucket's count after this statement, and its window's end); rows are locked in bucket
# order, so concurrent statements cannot deadlock.
HIT_BUCKETS_CTES = """
        w AS (
            SELECT b.bucket, b.period, b.n, b.ord, t.clock AS start
            FROM t, unnest({buckets}::text[], {periods}::int[], {counts}::int[])
                    WITH ORDINALITY AS b(bucket, period, n, ord)
        ), hits AS (
            INSERT INTO rate_limits AS r (bucket, window_start, expires_at, hits)
            SELECT bucket, start, start + make_interval(secs => period), n FROM w ORDER BY bucket
            ON CONFLICT (bucket) DO UPDATE SET
                hits = CASE WHEN r.expires_at > EXCLUDED.window_start
                            THEN r.hits + EXCLUDED.hits ELSE EXCLUDED.hits END,
                window_start = CASE WHEN r.expires_at > EXCLUDED.window_start
                                    THEN r.window_start ELSE EXCLUDED.window_start END,
                expires_at = CASE WHEN r.expires_at > EXCLUDED.window_start
                                  THEN r.expires_at ELSE EXCLUDED.expires_at END
            RETURNING bucket, hits, expires_at
        )
"""


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
        "WITH t AS (SELECT clock_timestamp() AS clock),"
        + HIT_BUCKETS_CTES.format(buckets="$1", periods="$2", counts="$3")
        + """
        SELECT h.hits, h.expires_at, t.clock AS now
        FROM t, hits h JOIN w USING (bucket) ORDER BY w.ord
        """,
        buckets,
        periods,
        [1] * len(buckets),
    )
    return [BucketState(r["hits"], r["expires_at"], r["now"]) for r in records]


async def get_bucket(conn: asyncpg.Connection, *, bucket: str) -> BucketState | None:
    """A bucket's count in its current window, without counting (None: no open window)."""
    record = await conn.fetchrow(
        """
        SELECT r.hits, r.expires_at, t.clock AS now
        FROM (SELECT clock_timestamp() AS clock) t
        JOIN rate_limits r ON r.bucket = $1 AND r.expires_at > t.clock
        """,
        bucket,
    )
    return (
        None if record is None else BucketState(record["hits"], record["expires_at"], record["now"])
    )


async def delete_expired_buckets(conn: asyncpg.Connection) -> int:
    result = await conn.execute("DELETE FROM rate_limits WHERE expires_at < now()")
    return int(result.split()[-1])
