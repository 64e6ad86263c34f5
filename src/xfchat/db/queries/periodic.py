"""When each periodic job last ran, for the whole cluster (migration 0046)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# A job's first claim ever only starts its clock (a full period before it runs, as a
# process's first start always waited); then one process whose claim finds the period
# over takes the run (another at the same moment waits for the row, then finds it
# taken). When it is next due, either way: for one that found it taken, by the run
# that took it (FOR SHARE reads the row as that run left it, where the statement's
# snapshot still held the old time, and said "due now"); for one whose first claim
# found another's first claim in flight (two workers starting on a new database: the
# row is not in its snapshot, and was NULL), a full period from now, as that one's.
_CLAIM = """
    WITH first AS (
        INSERT INTO periodic_runs (name, ran_at) VALUES ($1, now())
        ON CONFLICT (name) DO NOTHING
        RETURNING ran_at
    ), claimed AS (
        UPDATE periodic_runs SET ran_at = now()
        WHERE name = $1 AND ran_at <= now() - make_interval(secs => $2)
        RETURNING ran_at
    )
    SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
           extract(epoch FROM COALESCE((SELECT ran_at FROM claimed), (SELECT ran_at FROM first),
                                       (SELECT ran_at FROM periodic_runs WHERE name = $1
                                        FOR SHARE),
                                       now())
                              + make_interval(secs => $2) - now())::float8 AS due_in
"""


@dataclass(frozen=True)
class Claim:
    claimed: bool  # this process runs the job now
    due_in_s: float  # when it is next due (after this run, if claimed)


async def claim_run(conn: asyncpg.Connection, *, name: str, period_s: float) -> Claim:
    row = await conn.fetchrow(_CLAIM, name, period_s)
    assert row is not None
    return Claim(row["claimed"], max(0.0, float(row["due_in"])))
