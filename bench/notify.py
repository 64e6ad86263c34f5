"""The notification path's own ceiling: how many event-log commits per second
PostgreSQL takes, and what the commit order and NOTIFY cost of it.

    uv run python -m bench.notify [--seconds 5]

On a durable local PostgreSQL (or BENCH_DATABASE_URL), K connections (1, 8, 32) each
commit, as fast as they can for --seconds, one message into a channel of its own
through the send path's write (xf_write_messages: the message, its event, the read
position), one transaction each, in three builds of the commit trigger of migration
0008 (swapped in with CREATE OR REPLACE, and put back at the end):

- as shipped: the commit takes the next number of the global commit order (a lock on
  the one event_clock row, held until the commit ends) and sends NOTIFY (which takes
  PostgreSQL's own cluster-wide notification lock at commit);
- without NOTIFY: the commit order alone;
- neither: the write alone (no trigger work), the database's ceiling for this write.

Prints commits per second per build and K, and each build's share of the plain write.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg

from bench.common import database, env_url

CLIENTS = (1, 8, 32)
# The shipped trigger's body, read from the database at start and restored at the end.
_BODY = "SELECT prosrc FROM pg_proc WHERE proname = 'event_log_commit'"
_WITHOUT_NOTIFY = """
CREATE OR REPLACE FUNCTION event_log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first_pos bigint := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE OLD.last_pos + 1 END;
    clock bigint;
BEGIN
    UPDATE event_clock SET g = event_clock.g + 1 RETURNING event_clock.g INTO clock;
    INSERT INTO event_commits (g, stream_id, first_pos, last_pos)
    VALUES (clock, NEW.id, first_pos, NEW.last_pos);
    RETURN NULL;
END $$
"""
_NEITHER = """
CREATE OR REPLACE FUNCTION event_log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END $$
"""
_WRITE = """
    SELECT xf_write_messages($1, now(), ARRAY[gen_random_uuid()], ARRAY[$2::uuid],
        ARRAY['notify bench'], ARRAY[NULL::text], ARRAY[NULL::uuid], ARRAY[''],
        ARRAY['{"seq":0,"content":"notify bench"}'], ARRAY[false], ARRAY[''],
        '{}'::text[], '{}'::int[])
"""


async def _channels(conn: asyncpg.Connection, n: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    email = f"notify{uuid.uuid4().hex[:8]}@example.com"
    user = await conn.fetchval(
        "INSERT INTO users (username, email, email_key, password_hash) "
        "VALUES ($1, $2, $2, 'x') RETURNING id",
        f"notify{uuid.uuid4().hex[:8]}",
        email,
    )
    ids = await conn.fetch(
        "INSERT INTO channels (kind, name) SELECT 'group', 'bench ' || g "
        "FROM generate_series(1, $1) g RETURNING id",
        n,
    )
    return user, [r["id"] for r in ids]


async def _run(pool: asyncpg.Pool, user: uuid.UUID, channels: list[uuid.UUID], s: float) -> float:
    deadline = time.perf_counter() + s
    counts = [0] * len(channels)

    async def client(i: int) -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                await conn.execute(_WRITE, channels[i], user)
                counts[i] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(len(channels))))
    return sum(counts) / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    async with database(env_url()) as url:
        pool = await asyncpg.create_pool(url, min_size=max(CLIENTS), max_size=max(CLIENTS))
        async with pool.acquire() as conn:
            shipped = await conn.fetchval(_BODY)
            user, channels = await _channels(conn, max(CLIENTS))
        builds = {
            "as shipped (order + NOTIFY)": None,
            "commit order, no NOTIFY": _WITHOUT_NOTIFY,
            "neither (the write alone)": _NEITHER,
        }
        rates: dict[str, dict[int, float]] = {}
        try:
            for label, body in builds.items():
                async with pool.acquire() as conn:
                    if body is not None:
                        await conn.execute(body)
                rates[label] = {}
                for k in CLIENTS:
                    rates[label][k] = await _run(pool, user, channels[:k], args.seconds)
            print(f"\nevent-log commits per second ({args.seconds:.0f} s per point, durable):")
            print(f"  {'build':<30}" + "".join(f"{f'{k} conn':>14}" for k in CLIENTS))
            plain = rates["neither (the write alone)"]
            for label, by_k in rates.items():
                cells = "".join(
                    f"{f'{by_k[k]:,.0f} ({100 * by_k[k] / plain[k]:.0f}%)':>14}" for k in CLIENTS
                )
                print(f"  {label:<30}{cells}")
        finally:
            async with pool.acquire() as conn:
                await conn.execute(
                    "CREATE OR REPLACE FUNCTION event_log_commit() RETURNS trigger "
                    "LANGUAGE plpgsql AS $body$" + shipped + "$body$"
                )
            await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
