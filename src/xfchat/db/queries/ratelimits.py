from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class BucketState:
    hits: int
    window_start: datetime
    expires_at: datetime
    now: datetime


async def hit_bucket(conn: asyncpg.Connection, *, bucket: str, period_s: int) -> BucketState:
    """Count one request in `bucket`'s current fixed window of `period_s` seconds.

    One autocommit upsert on an UNLOGGED table. Windows are aligned on the database clock
    so that every server process agrees on where a window starts and ends."""
    record = await conn.fetchrow(
        """
        WITH t AS (
            SELECT clock_timestamp() AS now,
                   to_timestamp(floor(extract(epoch FROM clock_timestamp()) / $2) * $2) AS start
        )
        INSERT INTO rate_limits AS r (bucket, window_start, expires_at, hits)
        SELECT $1, t.start, t.start + make_interval(secs => $2), 1 FROM t
        ON CONFLICT (bucket) DO UPDATE SET
            hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
            window_start = EXCLUDED.window_start,
            expires_at = EXCLUDED.expires_at
        RETURNING hits, window_start, expires_at, (SELECT now FROM t) AS now
        """,
        bucket,
        period_s,
    )
    assert record is not None
    return BucketState(record["hits"], record["window_start"], record["expires_at"], record["now"])


async def hit_buckets(
    conn: asyncpg.Connection, *, buckets: list[str], periods: list[int]
) -> list[BucketState]:
    """`hit_bucket` for several buckets in one statement (in the order given; rows are
    locked in bucket order, so concurrent callers cannot deadlock)."""
    records = await conn.fetch(
        """
        WITH t AS (SELECT clock_timestamp() AS now),
        w AS (
            SELECT b.bucket, b.ord, b.period,
                   to_timestamp(floor(extract(epoch FROM t.now) / b.period) * b.period) AS start
            FROM t, unnest($1::text[], $2::int[]) WITH ORDINALITY AS b(bucket, period, ord)
        ), up AS (
            INSERT INTO rate_limits AS r (bucket, window_start, expires_at, hits)
            SELECT bucket, start, start + make_interval(secs => period), 1 FROM w
            ORDER BY bucket
            ON CONFLICT (bucket) DO UPDATE SET
                hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
                window_start = EXCLUDED.window_start,
                expires_at = EXCLUDED.expires_at
            RETURNING bucket, hits, window_start, expires_at
        )
        SELECT up.hits, up.window_start, up.expires_at, (SELECT now FROM t) AS now
        FROM up JOIN w USING (bucket) ORDER BY w.ord
        """,
        buckets,
        periods,
    )
    return [BucketState(r["hits"], r["window_start"], r["expires_at"], r["now"]) for r in records]


async def delete_expired_buckets(conn: asyncpg.Connection) -> int:
    result = await conn.execute("DELETE FROM rate_limits WHERE expires_at < now()")
    return int(result.split()[-1])
