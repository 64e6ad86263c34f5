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


async def delete_expired_buckets(conn: asyncpg.Connection) -> int:
    result = await conn.execute("DELETE FROM rate_limits WHERE expires_at < now()")
    return int(result.split()[-1])
