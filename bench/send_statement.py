"""What one send batch costs PostgreSQL, and what of it each part of the write takes.

    uv run python -m bench.send_statement [--batches N] [--rounds R]

A durable local PostgreSQL and one `xfchat serve` (as `bench.load` starts them: its
LISTEN connection hears every commit, as in production), five users in one group
conversation, then the fast path's statement (`xf_send_batch`, migration 0026, measured
through a renamed copy of its definition as the database holds it) called directly on
one connection, N batches of five messages (one per author) each, every
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

    uv run python -m bench.send_statement --sizes 1,2,5,10

instead measures the statement as shipped with batches of each size (one message per
author, as many authors), the sizes alternating round by round, and splits a batch's
cost into what it costs whatever its size (the fixed part) and what each message adds,
by a least-squares line through the sizes' medians.

    uv run python -m bench.send_statement --vectors

instead measures the statement as shipped with the stored search vector computed as
shipped (migration 0050: the grams by a loop) and as migration 0036 computed it (the
grams by a query, prefixed by another), the two definitions swapped round by round
(at least 4 rounds each).
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
from xfchat.db.migrate import DEFAULT_DIR

BATCH = 5  # messages per batch, one per author (what 10 x 100 carries on average)

# What is measured is always bench_send_batch: the shipped function's twin (its
# definition as the database holds it, renamed), first as it is, then with these edits:
# the rate limits counted in the renewing upsert and taken back if the batch is over a
# limit, where the shipped one renews, judges, then counts in xf_write_messages.
COUNTED_ONCE = [
    (
        "SELECT COALESCE(array_agg(b.o_hits ORDER BY b.o_ord), '{}'),",
        "SELECT COALESCE(array_agg(b.o_hits - k.n ORDER BY b.o_ord), '{}'),",
    ),
    (
        "FROM xf_hit_buckets(p_buckets, p_periods, array_fill(0, ARRAY[cardinality(p_buckets)])) b;",
        "FROM xf_hit_buckets(p_buckets, p_periods, p_counts) b\n"
        "    JOIN unnest(p_counts) WITH ORDINALITY AS k(n, ord) ON k.ord = b.o_ord;",
    ),
    (
        "o_status := 'limited';",
        "UPDATE rate_limits r SET hits = r.hits - b.n\n"
        "        FROM unnest(p_buckets, p_counts) AS b(bucket, n) WHERE r.bucket = b.bucket;\n"
        "        o_status := 'limited';",
    ),
    (
        "array_fill(''::text, ARRAY[n]), p_buckets, p_counts);",
        "array_fill(''::text, ARRAY[n]), '{}', '{}');",
    ),
]


# The grams and the vector as migrations 0027 and 0036 defined them (a query a message,
# and one more to prefix its grams), taken from migration 0050's revert, which restores
# them, and renamed grams_0027 and vector_0036 in `schema`: `--vectors` measures them
# against the shipped ones (0050's loop), and tests/db/test_search_text.py checks that
# both give the same grams in the same order and the same vectors.
def the_0036_vector(schema: str = "public") -> str:
    down = (DEFAULT_DIR / "0050_search_grams_looped.down.sql").read_text()

    def definition(head: str, renames: list[tuple[str, str]]) -> str:
        start = down.index(head)
        text = down[start : down.index("$$;", start) + 3]
        for old, new in renames:
            if text.count(old) != 1:
                raise SystemExit(f"migration 0050's revert changed: {old!r} not in it once")
            text = text.replace(old, new)
        return text

    grams = definition(
        "CREATE OR REPLACE FUNCTION xf_grams(f text)",
        [("FUNCTION xf_grams(f text)", f"FUNCTION {schema}.grams_0027(f text)")],
    )
    vector = definition(
        "CREATE OR REPLACE FUNCTION xf_search_vector(",
        [
            ("FUNCTION xf_search_vector(", f"FUNCTION {schema}.vector_0036("),
            ("unnest(xf_grams(f))", f"unnest({schema}.grams_0027(f))"),
        ],
    )
    return f"{grams}\n{vector}\n"


# What of the shipped vector's definition 0036 had otherwise (its grams by a query).
LOOPED_GRAMS = "xf_grams(f, ' ')"
QUERIED_GRAMS = "ARRAY(SELECT ' ' || g FROM unnest(public.grams_0027(f)) AS g)"


async def twin(conn: asyncpg.Connection, edits: list[tuple[str, str]]) -> None:
    """bench_send_batch: xf_send_batch's definition renamed, with `edits` applied."""
    sql = await conn.fetchval("SELECT pg_get_functiondef('xf_send_batch'::regproc)")
    for old, new in [
        ("FUNCTION public.xf_send_batch(", "FUNCTION public.bench_send_batch("),
        *edits,
    ]:
        if sql.count(old) != 1:
            raise SystemExit(f"xf_send_batch changed: {old!r} is no longer in it once")
        sql = sql.replace(old, new)
    await conn.execute(sql)


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

CALL = (
    "SELECT o_status FROM bench_send_batch($1, $2, true, $3, '{}'::uuid[], '{}'::text[],"
    " $4, $5, $6, $3, $7, $8, $9, $10, $11, $12, $13)"
)


async def count_once(conn: asyncpg.Connection) -> None:
    await twin(conn, COUNTED_ONCE)


async def drop_foreign_keys(conn: asyncpg.Connection) -> None:
    await conn.execute(NO_FOREIGN_KEYS)


async def drop_search(conn: asyncpg.Connection) -> None:
    await conn.execute(NO_SEARCH)


STEPS = [
    ("rate limits counted once", count_once),
    ("no foreign keys", drop_foreign_keys),
    ("no search column", drop_search),
]


async def batches(
    conn: asyncpg.Connection, channel: uuid.UUID, authors: Sequence[uuid.UUID], n: int
) -> tuple[float, float]:
    """n batches through bench_send_batch: the backend's CPU and the wall time, µs per
    batch."""
    backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
    version = await conn.fetchval("SELECT access_version FROM channels WHERE id = $1", channel)
    buckets = [f"bench:{a}" for a in authors]
    before = backend.cpu_times()
    started = time.perf_counter()
    for i in range(n):
        ids = [uuid.uuid4() for _ in authors]
        bodies = [f'{{"id":"{m}","seq":0,"created_at":"@now","content":"m {i}"}}' for m in ids]
        status = await conn.fetchval(
            CALL,
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
            raise SystemExit(f"bench_send_batch answered {status!r}")
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


async def by_size(
    conn: asyncpg.Connection,
    channel: uuid.UUID,
    authors: Sequence[uuid.UUID],
    sizes: Sequence[int],
    n: int,
    rounds: int,
) -> None:
    """The shipped statement at each batch size, and the fixed and per-message parts."""
    print(f"The send statement as shipped, {n} batches a round, sizes alternating:")
    await twin(conn, [])
    await batches(conn, channel, authors[: max(sizes)], 200)  # (warm-up)
    runs: dict[int, list[tuple[float, float]]] = {k: [] for k in sizes}
    for _ in range(rounds):
        for k in sizes:
            runs[k].append(await batches(conn, channel, authors[:k], n))
    cpus = {k: statistics.median(r[0] for r in runs[k]) for k in sizes}
    for k in sizes:
        wall = statistics.median(r[1] for r in runs[k])
        print(
            f"  {k:3} a batch: backend CPU {cpus[k]:6.0f} µs a batch ({cpus[k] / k:4.0f} a"
            f" message), round trip {wall:6.0f} µs",
            flush=True,
        )
    if len(sizes) > 1:
        slope, fixed = statistics.linear_regression(list(sizes), [cpus[k] for k in sizes])
        print(f"  fixed part {fixed:.0f} µs a batch, {slope:.0f} µs each message adds")


async def by_vector(
    conn: asyncpg.Connection,
    channel: uuid.UUID,
    authors: Sequence[uuid.UUID],
    n: int,
    rounds: int,
) -> None:
    """The shipped statement with the search vector as shipped (migration 0050) and as
    0036 had it, the two definitions swapped in turn round by round."""
    await conn.execute(the_0036_vector())
    shipped = await conn.fetchval("SELECT pg_get_functiondef('xf_search_vector'::regproc)")
    if shipped.count(LOOPED_GRAMS) != 1:
        raise SystemExit(f"xf_search_vector changed: {LOOPED_GRAMS!r} is no longer in it once")
    definitions = {"0050 (shipped)": shipped, "0036": shipped.replace(LOOPED_GRAMS, QUERIED_GRAMS)}
    print(f"A send batch of {BATCH} messages, {n} batches a round, the vectors alternating:")
    await twin(conn, [])
    await batches(conn, channel, authors[:BATCH], 200)  # (warm-up)
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in definitions}
    for _ in range(rounds):
        for label, definition in definitions.items():
            await conn.execute(definition)
            await batches(conn, channel, authors[:BATCH], 20)  # (its plans made again)
            runs[label].append(await batches(conn, channel, authors[:BATCH], n))
    first = None
    for label in reversed(definitions):
        cpu = show(f"vector as {label}", runs[label], first)
        first = first or cpu
    await conn.execute(shipped)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=1000, help="per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="per step (default 2)")
    parser.add_argument(
        "--sizes", help="comma-separated batch sizes: the fixed and per-message parts instead"
    )
    parser.add_argument(
        "--vectors",
        action="store_true",
        help="the search vector as shipped and as migration 0036 had it, alternating",
    )
    args = parser.parse_args()
    sizes = sorted({int(k) for k in args.sizes.split(",")}) if args.sizes else []
    if any(k < 1 for k in sizes):
        parser.error("--sizes: each size is at least 1")
    async with local_server() as (base, _proc, pg):
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            users = await register(client, max([BATCH, *sizes]))
            channel = uuid.UUID(await make_group(client, users))
        authors = [uuid.UUID(u.id) for u in users]
        conn = await asyncpg.connect(pg.url)
        try:
            if args.vectors:
                await by_vector(conn, channel, authors, args.batches, max(args.rounds, 4))
                return
            if sizes:
                await by_size(conn, channel, authors, sizes, args.batches, args.rounds)
                return
            print(f"A send batch of {BATCH} messages, {args.batches} batches a round:")
            await twin(conn, [])
            authors = authors[:BATCH]
            await batches(conn, channel, authors, 200)  # (warm-up)
            runs = [await batches(conn, channel, authors, args.batches) for _ in range(args.rounds)]
            first = show("as shipped", runs, None)
            for label, step in STEPS:
                await step(conn)
                runs = [
                    await batches(conn, channel, authors, args.batches) for _ in range(args.rounds)
                ]
                show(f"+ {label}", runs, first)
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
