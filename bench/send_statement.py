"""What one send batch costs PostgreSQL, and what of it each part of the write takes.

    uv run python -m bench.send_statement [--batches N] [--rounds R]

A durable local PostgreSQL and one `xfchat serve` (as `bench.load` starts them: its
LISTEN connection hears every commit, as in production), five users in one group
conversation, then the fast path's statement (`xf_send_batch`, migration 0026) called
directly on one connection, N batches of five messages (one per author) each, every
call its own transaction as the writer sends it. Printed per batch: the CPU of that
connection's backend process (the statement, its triggers, its commit, its NOTIFY) and
the wall time of the round trip.

Then the same on the same database with parts of the write taken away, one after the
other (each in addition to the ones before; a throwaway database, never yours):
- `rate limits counted once`: the buckets counted as they are renewed, in one upsert,
  instead of renewed then counted (an alternative function beside the shipped one);
- `no foreign keys`: the foreign keys of messages, events, read_states and
  event_commits dropped (each row's check is a query of its own);
- `no search column`: messages' stored search vector and its GIN index dropped.

Rounds alternate nothing (a change cannot be undone cheaply), so each step's figure is
taken right after the one before it; R rounds (default 2) of the baseline come first.
Nothing here is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence

import asyncpg
import httpx
import psutil

from bench.load import local_server, make_group, register

BATCH = 5  # messages per batch, one per author (what 10 x 100 carries on average)

# The shipped function's twin, but for the rate limits: counted in the renewing upsert,
# taken back if the batch is over a limit (the shipped one renews, judges, then counts).
COUNTED_ONCE = """
CREATE OR REPLACE FUNCTION bench_send_batch(
    p_channel uuid, p_version bigint, p_facts_current boolean,
    p_check_ids uuid[], p_nonce_authors uuid[], p_check_nonces text[],
    p_buckets text[], p_periods int[], p_limits int[],
    p_ids uuid[], p_authors uuid[], p_contents text[], p_nonces text[], p_mentions text[],
    p_datas text[], p_everyone boolean[], p_counts int[],
    OUT o_status text, OUT o_at timestamptz, OUT o_last bigint, OUT o_hits int[],
    OUT o_ends timestamptz[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ch record;
    n int := cardinality(p_ids);
BEGIN
    o_at := now();
    SELECT c.access_version, c.rate_limit_per_user INTO ch
    FROM channels c WHERE c.id = p_channel FOR KEY SHARE;
    IF NOT FOUND OR ch.access_version IS DISTINCT FROM p_version OR NOT p_facts_current
       OR ch.rate_limit_per_user <> 0 THEN
        o_status := 'refused';
        RETURN;
    ELSIF EXISTS (SELECT 1 FROM unnest(p_check_ids) AS i(id),
                  LATERAL (SELECT 1 FROM messages m WHERE m.id = i.id OFFSET 0) x)
       OR EXISTS (SELECT 1 FROM unnest(p_nonce_authors, p_check_nonces) AS k(author, nonce),
                  LATERAL (SELECT 1 FROM messages m WHERE m.channel_id = p_channel
                           AND m.author_id = k.author AND m.nonce = k.nonce OFFSET 0) x) THEN
        o_status := 'repeat';
        RETURN;
    END IF;
    SELECT COALESCE(array_agg(b.o_hits - k.n ORDER BY b.o_ord), '{}'),
           COALESCE(array_agg(b.o_expires_at ORDER BY b.o_ord), '{}')
    INTO o_hits, o_ends
    FROM xf_hit_buckets(p_buckets, p_periods, p_counts) b
    JOIN unnest(p_counts) WITH ORDINALITY AS k(n, ord) ON k.ord = b.o_ord;
    IF EXISTS (SELECT 1 FROM unnest(o_hits, p_counts, p_limits) AS b(h, k, l)
               WHERE b.h + b.k > b.l) THEN
        UPDATE rate_limits r SET hits = r.hits - b.n
        FROM unnest(p_buckets, p_counts) AS b(bucket, n) WHERE r.bucket = b.bucket;
        o_status := 'limited';
        RETURN;
    END IF;
    o_last := xf_write_messages(
        p_channel, o_at, p_ids, p_authors, p_contents, p_nonces,
        array_fill(NULL::uuid, ARRAY[n]), p_mentions, p_datas, p_everyone,
        array_fill(''::text, ARRAY[n]), '{}'::text[], '{}'::int[]);
    o_status := 'ok';
END
$$;
"""

NO_FOREIGN_KEYS = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
             WHERE contype = 'f' AND conrelid::regclass::text
                   IN ('messages', 'events', 'read_states', 'event_commits') LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
    END LOOP;
END $$;
"""

NO_SEARCH = "ALTER TABLE messages DROP COLUMN search CASCADE;"

CALLS = {  # (the two functions measured, by name)
    "xf_send_batch": (
        "SELECT o_status FROM xf_send_batch($1, $2, true, $3, '{}'::uuid[], '{}'::text[],"
        " $4, $5, $6, $3, $7, $8, $9, $10, $11, $12, $13)"
    ),
    "bench_send_batch": (
        "SELECT o_status FROM bench_send_batch($1, $2, true, $3, '{}'::uuid[], '{}'::text[],"
        " $4, $5, $6, $3, $7, $8, $9, $10, $11, $12, $13)"
    ),
}

STEPS = [
    ("rate limits counted once", COUNTED_ONCE, "bench_send_batch"),
    ("no foreign keys", NO_FOREIGN_KEYS, "bench_send_batch"),
    ("no search column", NO_SEARCH, "bench_send_batch"),
]


async def batches(
    conn: asyncpg.Connection, channel: uuid.UUID, authors: Sequence[uuid.UUID], n: int, fn: str
) -> tuple[float, float]:
    """n batches through `fn`: the backend's CPU and the wall time, µs per batch."""
    backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
    version = await conn.fetchval("SELECT access_version FROM channels WHERE id = $1", channel)
    buckets = [f"bench:{a}" for a in authors]
    call = CALLS[fn]
    before = backend.cpu_times()
    started = time.perf_counter()
    for i in range(n):
        ids = [uuid.uuid4() for _ in authors]
        bodies = [f'{{"id":"{m}","seq":0,"created_at":"@now","content":"m {i}"}}' for m in ids]
        status = await conn.fetchval(
            call,
            channel,
            version,
            ids,
            buckets,
            [60] * len(ids),
            [10**9] * len(ids),
            list(authors),
            [f"message number {i} of this run" for _ in ids],
            [None] * len(ids),
            [""] * len(ids),
            bodies,
            [False] * len(ids),
            [1] * len(ids),
        )
        if status != "ok":
            raise SystemExit(f"{fn} answered {status!r}")
    wall = time.perf_counter() - started
    after = backend.cpu_times()
    cpu = after.user + after.system - before.user - before.system
    return 1e6 * cpu / n, 1e6 * wall / n


def show(label: str, runs: list[tuple[float, float]], base: float | None) -> float:
    cpu = statistics.median(r[0] for r in runs)
    wall = statistics.median(r[1] for r in runs)
    versus = f"  ({100 * (cpu - base) / base:+.0f} % CPU)" if base else ""
    print(
        f"  {label:<28} backend CPU {cpu:6.0f} µs a batch ({cpu / BATCH:4.0f} a message),"
        f" round trip {wall:6.0f} µs{versus}",
        flush=True,
    )
    return cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=1000, help="per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="per step (default 2)")
    args = parser.parse_args()
    async with local_server() as (base, _proc, pg):
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            users = await register(client, BATCH)
            channel = uuid.UUID(await make_group(client, users))
        authors = [uuid.UUID(u.id) for u in users]
        conn = await asyncpg.connect(pg.url)
        try:
            print(f"A send batch of {BATCH} messages, {args.batches} batches a round:")
            await batches(conn, channel, authors, 200, "xf_send_batch")  # (warm-up)
            runs = [
                await batches(conn, channel, authors, args.batches, "xf_send_batch")
                for _ in range(args.rounds)
            ]
            first = show("as shipped", runs, None)
            for label, sql, fn in STEPS:
                await conn.execute(sql)
                runs = [
                    await batches(conn, channel, authors, args.batches, fn)
                    for _ in range(args.rounds)
                ]
                show(f"+ {label}", runs, first)
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
