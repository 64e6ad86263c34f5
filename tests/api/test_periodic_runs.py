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
    assert all(3590 < c.due_in_s <= 3600 for c in claims)  # (next due an hour on)


async def test_a_process_started_again_runs_a_job_that_is_due_at_once(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """An hourly job whose last run was more than an hour ago runs as soon as a process
    starts, where each start waited an hour again; one that ran a minute ago waits."""
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)

    for name, ago in (("due", 3700), ("not-due", 60)):
        await periodic_q.claim_run(conn, name=name, period_s=3600)
        assert await conn.execute(RAN_AGO, name, ago) == "UPDATE 1"
    tasks = [every(3600, lambda n=n: job(n), n, pool) for n in ("due", "not-due")]
    try:
        async with asyncio.timeout(30):  # (a hang guard: it runs at once)
            while "due" not in ran:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # (time for the other to have run, were it wrongly due)
    finally:
        await stop(*tasks)
    assert ran == ["due"]
    left = await conn.fetchval(
        "SELECT extract(epoch FROM now() - ran_at) FROM periodic_runs WHERE name = 'due'"
    )
    assert left < 30  # (its clock starts again from this run)
