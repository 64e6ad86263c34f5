"""What bounds the 10 x 100 point: XFChat with the send's statement as shipped, and with
parts of it taken away, each beside the in-memory ceiling of the same round.

    uv run python -m bench.bound [--rounds R] [--messages M]

10 senders x M messages (300) with 10 SSE receivers, as `bench.load --senders 10
--messages M` runs it, against four servers on one durable PostgreSQL, one at a time,
each started fresh for its turn, the order turning round by round (R rounds, 3):
- `shipped`: `xfchat serve` as it is;
- `no-facts`: the fast path's statement without its comparison of the access facts
  the batch was decided from (`true` in its place);
- `events-only`: a statement that takes the channel's sequence numbers and appends the
  messages' events (so the commit-order trigger, its NOTIFY and every delivery happen),
  and nothing else: no message row (no search vector, no index of `messages`), no
  check of access, ids, nonces or slowmode, no rate limit, no read position;
- `counter-only`: a statement that takes the sequence numbers and nothing else: a
  durable one-row update, no event, so no delivery (its receivers are connected and
  get only what the checked path wrote: a channel's first batch, whose facts the
  process had not read yet; nothing waits for them).
Each is this module run as `--serve VARIANT`: it replaces the statement's text
(`_SEND_BATCH_FAST` in db/queries/messages_send.py) in its own process, then serves as
`xfchat serve` does. Nothing in xfchat changes; these servers write wrong data (no
messages) and exist only here, on a throwaway database. The ceiling runs once a round.

Printed: each run as `bench.load` prints it, then per variant its msgs/s in each round
and its share of that round's ceiling. Nothing is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import asyncpg

from bench.load import Result, Usage, ceiling_server, point
from bench.procs import start_servers
from xfchat.db.embedded import throwaway
from xfchat.db.migrate import Migrator

SENDERS = RECEIVERS = 10

# (what the statement answers: status, the transaction's time, the last sequence
# number, each rate-limit bucket's count before the batch and its window's end; every
# parameter named with its type, as PostgreSQL must infer each one's)
_ANSWER = """
    d AS (SELECT $2::uuid[], $3::jsonb, $4::uuid[], $5::uuid[], $6::text[], $8::int[],
                 $9::int[], $11::uuid[], $12::text[], $13::text[], $14::text[], $15::text[],
                 $16::bool[], $17::int[])
    SELECT 'ok', now(), c.last_seq, array_fill(0, ARRAY[cardinality($7::text[])]),
           array_fill(now() + interval '1 hour', ARRAY[cardinality($7::text[])])
    FROM c, d
"""
_COUNTER = """
    c AS (UPDATE channels SET last_seq = last_seq + cardinality($10::uuid[]) WHERE id = $1
          RETURNING last_seq)
"""
# (both of this module's constants only)
COUNTER_ONLY = f"WITH {_COUNTER}, {_ANSWER}"
EVENTS_ONLY = f"""WITH {_COUNTER},
    t AS (SELECT u.data, u.ord, c.last_seq - cardinality($10::uuid[]) + u.ord AS seq
          FROM c, unnest($15::text[]) WITH ORDINALITY AS u(data, ord)),
    s AS (INSERT INTO event_streams AS es (kind, entity_id, last_pos)
          SELECT 'channel', $1, cardinality($10::uuid[]) FROM c
          ON CONFLICT (kind, entity_id) DO UPDATE
              SET last_pos = es.last_pos + cardinality($10::uuid[])
          RETURNING id, last_pos),
    e AS (INSERT INTO events (stream_id, pos, type, data)
          SELECT s.id, s.last_pos - cardinality($10::uuid[]) + t.ord, 'message.created',
                 replace(replace(t.data, '"seq":0,', '"seq":' || t.seq || ','),
                         '"created_at":"@now"', '"created_at":"' || xf_iso(now()) || '"')::jsonb
          FROM s, t),
    {_ANSWER}"""  # noqa: S608
VARIANTS = ("shipped", "no-facts", "events-only", "counter-only")


def serve(variant: str) -> int:
    """`xfchat serve` with the fast path's statement replaced as `variant` says."""
    from xfchat.cli import main
    from xfchat.db.queries import access
    from xfchat.db.queries import messages_send as q

    if variant == "no-facts":
        compared = f"COALESCE({access.FACTS_BY_USER_JSONB} = $3::jsonb, false)"
        if q._SEND_BATCH_FAST.count(compared) != 1:
            raise SystemExit("the send's statement changed: its facts' comparison is not in it")
        q._SEND_BATCH_FAST = q._SEND_BATCH_FAST.replace(
            compared, "($3::jsonb IS NOT NULL AND $2::uuid[] IS NOT NULL)"
        )
    elif variant == "events-only":
        q._SEND_BATCH_FAST = EVENTS_ONLY
    elif variant == "counter-only":
        q._SEND_BATCH_FAST = COUNTER_ONLY
    elif variant != "shipped":
        raise SystemExit(f"no such variant: {variant}")
    return main(["serve"])


async def bound(rounds: int, messages: int) -> None:
    pg, root = throwaway(prefix="xfbound-", durable=True)
    found: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    try:
        conn = await asyncpg.connect(pg.url)
        await Migrator(conn).run()
        await conn.close()
        local = pg.socket_url_for("postgres")
        async with ceiling_server() as (top, ceiling):
            label = f"{SENDERS} senders x {messages} msgs, {RECEIVERS} receivers"

            async def run(base: str, usage: Usage, deliveries: bool = True) -> Result:
                return await point(
                    base,
                    usage,
                    senders=SENDERS,
                    messages=messages,
                    receivers=RECEIVERS,
                    transport="sse",
                    label=label,
                    deliveries=deliveries,
                )

            for r in range(rounds):
                print(f"\nround {r + 1}: {label}  [sse]")
                top_rate = (await run(top, Usage(ceiling, None, "ceiling"))).throughput
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    command = [sys.executable, "-m", "bench.bound", "--serve", variant]
                    (server,) = await start_servers(1, {"DATABASE_URL": local}, Path(root), command)
                    try:
                        usage = Usage(server.proc, pg, variant)
                        rate = (await run(server.base, usage, variant != "counter-only")).throughput
                    finally:
                        server.stop()
                    found[variant].append((rate, top_rate))
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nmsgs/s, and the share of the ceiling in the same round ({rounds} rounds):")
    for variant, runs in found.items():
        each = ", ".join(f"{rate:,.0f} ({100 * rate / top:.0f} %)" for rate, top in runs)
        print(f"  {variant:>13}: {each}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300, help="per sender")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sys.exit(serve(args.serve))
    if args.rounds < 1 or args.messages < 1:
        parser.error("--rounds and --messages are at least 1")
    import uvloop

    uvloop.run(bound(args.rounds, args.messages))


if __name__ == "__main__":
    main()
