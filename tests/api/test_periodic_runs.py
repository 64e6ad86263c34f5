"""The periodic jobs' clock is the cluster's (periodic_runs, migration 0046), not each
process's: a process started again goes on where the last run left off (one restarted
more often than an hourly job's period never ran it), and of several processes one runs
each period (N workers ran each job N times, at once)."""

from __future__ import annotations

import asyncio

import asyncpg

from xfchat.db.queries import periodic as periodic_q
from xfchat.tasks import every, stop

RAN_AGO = "UPDATE periodic_runs SET ran_at = now() - make_interval(secs => $2) WHERE name = $1"


async def test_a_jobs_first_claim_starts_its_clock_and_one_claim_a_period_runs_it(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    first = await periodic_q.claim_run(conn, name="job", period_s=3600)
    assert not first.claimed and 3590 < first.due_in_s <= 3600  # (a full period first)
    again = await periodic_q.claim_run(conn, name="job", period_s=3600)
    assert not again.claimed and again.due_in_s <= first.due_in_s
    assert await conn.execute(RAN_AGO, "job", 3601) == "UPDATE 1"

    async def claim() -> periodic_q.Claim:
        async with pool.acquire() as c:
            return await periodic_q.claim_run(c, name="job", period_s=3600)

    claims = await asyncio.gather(*(claim() for _ in range(4)))  # four processes at once
    assert sorted(c.claimed for c in claims) == [False, False, False, True]
    # (next due an hour on, by the run that took it: a claim that waited for it started
    # a moment before it, and counts that moment too)
    assert all(3590 < c.due_in_s < 3610 for c in claims), claims
    # One that ran a minute ago is not due: it waits the rest of its hour.
    assert await conn.execute(RAN_AGO, "job", 60) == "UPDATE 1"
    waits = await periodic_q.claim_run(conn, name="job", period_s=3600)
    assert not waits.claimed and 3530 < waits.due_in_s <= 3540


async def test_two_processes_first_claims_at_once_both_start_the_clock(db_url: str) -> None:
    """Two workers starting on a new database claim a job's first run at once: the
    second's insert waits for the first's, and its statement then saw no row at all
    (its snapshot predates it), so its due time was NULL and the claim raised (the
    multi-worker shutdown test caught the traceback). Now both wait a full period."""
    first, second, watch = [await asyncpg.connect(db_url) for _ in range(3)]
    try:
        opening = first.transaction()
        await opening.start()
        mine = await periodic_q.claim_run(first, name="new", period_s=600)
        theirs = asyncio.create_task(periodic_q.claim_run(second, name="new", period_s=600))
        waiting = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        async with asyncio.timeout(30):  # (until the second's insert waits on the first's)
            while not await watch.fetchval(waiting):
                await asyncio.sleep(0.05)
        await opening.commit()
        other = await theirs
    finally:
        for conn in (first, second, watch):
            await conn.close()
    assert not mine.claimed and not other.claimed
    assert 590 < mine.due_in_s <= 600 and 590 < other.due_in_s <= 600, (mine, other)


async def test_a_process_started_again_runs_a_job_that_is_due_at_once(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """An hourly job whose last run was more than an hour ago runs as soon as a process
    starts, where each start waited an hour again (one that ran a minute ago waits: the
    test above)."""
    ran: list[str] = []

    async def job() -> None:
        ran.append("due")

    await periodic_q.claim_run(conn, name="due", period_s=3600)
    assert await conn.execute(RAN_AGO, "due", 3700) == "UPDATE 1"
    task = every(3600, job, "due", pool)
    try:
        async with asyncio.timeout(30):  # (a hang guard: it runs at once)
            while not ran:
                await asyncio.sleep(0.05)
    finally:
        await stop(task)
    assert ran == ["due"]
    left = await conn.fetchval(
        "SELECT extract(epoch FROM now() - ran_at) FROM periodic_runs WHERE name = 'due'"
    )
    assert left < 3600  # (its clock starts again from this run, not 3,700 s back)
