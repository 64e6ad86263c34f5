"""Reads that must not grow with a channel's backlog or a message's popularity, on a
database laid out as a live server's is.

    uv run python -m bench.backlog [--long N] [--reactions R] [--runs K]

A durable local PostgreSQL (or BENCH_DATABASE_URL), filled straight through SQL: a
server of 50 text channels (one of N messages, 150,000 by default; 49 of 3,000), 300
small servers of one channel of 50, 5,000 group conversations of 4; every channel's
messages interleaved in the table, as messages written over time are (a channel's rows
far apart: a read of a channel's backlog is one page per row), then VACUUM ANALYZE.
The newest message of the long channel has R reactions (5,000), by R users, with two
emoji.

On a connection of the server's own pool (its settings: generic plans, no JIT), K times
each (20), printed with the median and p99 and the rows each read (index entries and
rows scanned, from the transaction's statistics):
- the unread counts of the 50 channels for a member who joined and read nothing (a
  `ready`, `GET /api/servers/{id}`): each count walks at most the first 100 unread;
- the newest page of 50 messages of the long channel, the hot message in it (history,
  as every client opens a channel): its reactions summed up from the counts of
  migration 0049;
- what a reaction toggle on the hot message reads before it writes (the emoji already
  there, and the viewer's).
Nothing here is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.common import database, env_url, rows_read, summary
from xfchat.db.pool import create_pool
from xfchat.db.queries import messages as messages_q
from xfchat.settings import DatabaseSettings

USERS = """
INSERT INTO users (username, email, email_key, password_hash)
SELECT 'u' || i, 'u' || i || '@example.com', 'u' || i || '@example.com', 'x'
FROM generate_series(1, $1::int) i
"""
SETUP = """
INSERT INTO servers (name, owner_id)
SELECT 's' || i, (SELECT id FROM users WHERE username = 'u1') FROM generate_series(1, 301) i;
INSERT INTO channels (server_id, kind, name, position)
SELECT s.id, 'text', 'c' || i, i
FROM servers s, generate_series(1, CASE WHEN s.name = 's1' THEN 50 ELSE 1 END) i;
INSERT INTO channels (kind, name) SELECT 'group', 'g' || i FROM generate_series(1, 5000) i;
"""
SIZES = """
CREATE TEMP TABLE sizes AS
SELECT c.id, CASE WHEN s.name = 's1' THEN CASE WHEN c.name = 'c1' THEN $1::int ELSE 3000 END
                  WHEN s.name IS NULL THEN 4 ELSE 50 END AS n
FROM channels c LEFT JOIN servers s ON s.id = c.server_id
"""
MESSAGES = """
INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
SELECT gen_random_uuid(), z.id, i, $1, 'message ' || i,
       now() - make_interval(secs => (z.n - i))
FROM sizes z, generate_series(1, z.n) i ORDER BY random()
"""
REACTIONS = """
INSERT INTO reactions (message_id, emoji, user_id)
SELECT $1, CASE WHEN random() < 0.5 THEN '👍' ELSE '🎉' END, id
FROM users ORDER BY username LIMIT $2
"""
READ_TABLES = ("messages", "message_mentions", "reactions", "reaction_counts")


async def fill(url: str, long: int, reactions: int) -> asyncpg.Record:
    """The database filled; the hot message (its id and channel_id)."""
    conn = await asyncpg.connect(url)
    try:
        started = time.monotonic()
        await conn.execute(USERS, max(1000, reactions + 1))
        await conn.execute(SETUP)
        await conn.execute(SIZES, long)
        author = await conn.fetchval("SELECT id FROM users WHERE username = 'u2'")
        await conn.execute(MESSAGES, author, timeout=3600)
        await conn.execute("UPDATE channels c SET last_seq = z.n FROM sizes z WHERE z.id = c.id")
        hot = await conn.fetchrow(
            "SELECT m.id, m.channel_id FROM messages m JOIN channels c ON c.id = m.channel_id"
            " JOIN servers s ON s.id = c.server_id"
            " WHERE s.name = 's1' AND c.name = 'c1' AND m.seq = c.last_seq"
        )
        await conn.execute(REACTIONS, hot["id"], reactions)
        await conn.execute("VACUUM ANALYZE", timeout=3600)
        total = await conn.fetchval("SELECT count(*) FROM messages")
        print(
            f"filled in {time.monotonic() - started:.0f} s: {total:,} messages"
            f" ({long:,} in the long channel), {reactions:,} reactions on its newest"
        )
        return hot
    finally:
        await conn.close()


async def measure(
    conn: asyncpg.Connection, label: str, runs: int, call: Callable[[], Awaitable[Any]]
) -> None:
    took, read = [], []

    async def timed() -> None:
        started = time.perf_counter()
        await call()
        took.append(time.perf_counter() - started)

    for _ in range(runs):
        _, n = await rows_read(conn, timed, READ_TABLES)
        read.append(n)
    print(f"{label:<44} {summary(took, 'ms')}   rows read {max(read):,}")


async def run(long: int, reactions: int, runs: int) -> None:
    async with database(env_url()) as url:
        hot = await fill(url, long, reactions)
        pool = await create_pool(DatabaseSettings(), url, min_size=1)
        try:
            async with pool.acquire() as conn:
                channels = [
                    r["id"]
                    for r in await conn.fetch(
                        "SELECT c.id FROM channels c JOIN servers s ON s.id = c.server_id"
                        " WHERE s.name = 's1' ORDER BY c.position"
                    )
                ]
                viewer = await conn.fetchval("SELECT id FROM users WHERE username = 'u1'")
                newcomer = uuid.uuid4()  # (no read state anywhere: read position 0)
                await measure(
                    conn,
                    "unread counts of 50 channels, a newcomer",
                    runs,
                    lambda: messages_q.list_unreads(
                        conn, user_id=newcomer, role_ids=[], channel_ids=channels
                    ),
                )
                await measure(
                    conn,
                    f"newest page of 50, {reactions:,} reactions in it",
                    runs,
                    lambda: messages_q.list_messages(
                        conn, viewer=viewer, channel_id=hot["channel_id"], limit=50
                    ),
                )
                await measure(
                    conn,
                    "a reaction toggle's read of the emoji there",
                    runs,
                    lambda: messages_q.list_reaction_emoji(
                        conn, message_id=hot["id"], user_id=viewer
                    ),
                )
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", type=int, default=150_000, help="messages of the long channel")
    parser.add_argument("--reactions", type=int, default=5_000, help="reactions on its newest")
    parser.add_argument("--runs", type=int, default=20, help="times each read is measured")
    args = parser.parse_args()
    if args.long < 1 or args.reactions < 1 or args.runs < 1:
        parser.error("--long, --reactions and --runs must be at least 1")
    asyncio.run(run(args.long, args.reactions, args.runs))


if __name__ == "__main__":
    main()
