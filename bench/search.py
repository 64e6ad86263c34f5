"""Search at a million messages: latency per query kind, index size, and what the index
adds to a send.

Starts a durable local PostgreSQL and a real `xfchat serve` (as `bench.load` does).
Through the API: 24 users, 20 servers of 10 text channels each, 100 group
conversations. `alice` is in every server and half the conversations; `carol` in one
server and two conversations (a small share of the corpus). Then 1,000,000 messages go
straight into the table in one INSERT per 100,000 (the generated search vector is
computed as in a send; the GIN index is built after them): Zipf-distributed English
words, code-like tokens (snake_case, dotted.names, CamelCase), URLs, about 5 % CJK, and
a rare word in about 60 messages, spread over every channel and conversation and over a
year.

Each query kind then runs ROUNDS times through HTTP (`GET /api/search`, one after
another): latency p50/p95/p99 per kind and over all. Then 300 sends one after another
with the search vector and index, and 300 without (column and index dropped): median
and p99 side by side.

    uv run python -m bench.search [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

import asyncpg
import httpx

from bench.common import pct
from bench.load import User, local_server, make_group, register
from bench.server_points import make_server

SERVERS = 20
CHANNELS_PER_SERVER = 10
CONVERSATIONS = 100
AUTHORS = 20
ROUNDS = 40
SENDS = 300
BATCH = 100_000
ENV = {
    "XFCHAT_RATE_SEARCH_USER": "1000000/60",
    "XFCHAT_RATE_API_USER": "1000000/60",
    "XFCHAT_RATE_MESSAGES_USER": "1000000/60",
    "XFCHAT_RATE_REGISTER_IP": "1000000/60",
}

# The corpus, generated in SQL: each message is 4-24 tokens drawn from these lists.
ENGLISH = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part server deploy database replication message channel error timeout release build "
    "merge branch commit review test failed passed latency queue worker backup restore "
    "migration index query cache memory disk network socket thread process kernel docker "
    "postgresql python rust javascript typescript react browser mobile desktop meeting "
    "tomorrow yesterday weekend lunch coffee thanks please sorry great awesome interesting"
).split()
CODE = (
    "snake_case_name get_user_by_id foo.bar.baz a.b.c CamelCaseThing HttpClient "
    "config.yaml main.py index.ts x86_64 utf-8 foo-bar pg_stat_activity max_connections "
    "asyncio.gather os.environ np.array user_id created_at /usr/local/bin ~/.bashrc"
).split()
URLS = [
    "https://example.com/docs/setup",
    "https://github.com/xfchat/xfchat/pull/123",
    "http://localhost:3000/login",
    "https://www.postgresql.org/docs/current/textsearch.html",
    "www.example.org/page",
]
CJK = [
    "我喜欢数据库系统",
    "今天的会议改到明天",
    "服务器出现了错误",
    "今日は東京タワーに行った",
    "データベースのバックアップ",
    "새로운 기능을 배포했습니다",
]
RARE = "xylophone"

# (kind, who, queries): one of `queries` per round, in turn.
MIX: list[tuple[str, str, list[str]]] = [
    ("common word", "alice", ["people", "time", "database", "error", "message"]),
    ("rare word", "alice", [RARE, "xylophones", "Xylophone"]),
    ("phrase", "alice", ['"deploy the server"', '"merge branch"', '"coffee thanks"']),
    ("prefix", "alice", ["deplo*", "replic*", "migr*"]),
    ("substring", "alice", ["gres", "ostgr", "ackup"]),
    ("punctuation", "alice", ["foo-bar", "a.b.c", "snake_case", "example.com/docs"]),
    ("CJK", "alice", ["数据库", "東京", "バックアップ", "会议"]),
    (
        "filters",
        "alice",
        [
            "from:(set once the users exist) deploy",
            "has:link in:#c2 error",
            "review during:2026-06-01",
        ],
    ),
    ("recent, common word", "alice", ["people sort=recent", "error sort=recent"]),
    ("small share, common word", "carol", ["people", "time", "error"]),
]


def _sql_list(words: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + w.replace("'", "''") + "'" for w in words) + "]::text[]"


# One message of channel ch.id (its i-th) by one of its authors: tokens by a Zipf-like
# draw over the English list, now and then a code token, a URL, a CJK phrase, the rare word.
INSERT = f"""
WITH src AS (
    SELECT c.id AS channel_id, c.authors, g.i,
           row_number() OVER (PARTITION BY c.id ORDER BY g.i) + c.base AS seq
    FROM generate_series($1::bigint, $2::bigint) AS g(i)
    JOIN bench_channels c
      ON c.k = floor($4 * power(((g.i * 2654435761) % 1000003) / 1000003.0, 1.5))::int
)
INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
SELECT gen_random_uuid(), s.channel_id, s.seq,
       s.authors[1 + floor(random() * cardinality(s.authors))::int],
       (SELECT string_agg(
            CASE WHEN r < 0.06 THEN ({_sql_list(CODE)})[1 + floor(random() * {len(CODE)})::int]
                 WHEN r < 0.075 THEN ({_sql_list(URLS)})[1 + floor(random() * {len(URLS)})::int]
                 WHEN r < 0.085 THEN ({_sql_list(CJK)})[1 + floor(random() * {len(CJK)})::int]
                 WHEN r < 0.08506 THEN '{RARE}'
                 ELSE ({_sql_list(ENGLISH)})[1 + floor(power(random(), 2.5) * {len(ENGLISH)})::int]
            END, ' ')
        FROM (SELECT random() AS r FROM generate_series(1, 4 + (s.i % 21)::int) t) x),
       now() - interval '365 days' + (s.i::float / $3) * interval '365 days'
FROM src s
"""  # noqa: S608 (made of the constant lists above)


async def _build(client: httpx.AsyncClient, pg_url: str, total: int) -> dict[str, User]:
    users = await register(client, AUTHORS + 4)
    alice, carol, others = users[0], users[1], users[2:]
    channels: list[tuple[str, list[str]]] = []
    for s in range(SERVERS):
        owner = others[s % len(others)]
        members = [owner, alice, *random.sample(others, 5)] + ([carol] if s == 0 else [])
        joiners = [m for m in {m.id: m for m in members}.values() if m is not owner]
        server = await make_server(client, owner, joiners)
        ids = [c["id"] for c in server["channels"] if c["kind"] == "text"]
        for n in range(len(ids), CHANNELS_PER_SERVER):
            made = await client.post(
                f"/api/servers/{server['id']}/channels",
                headers=owner.headers,
                json={"name": f"c{n}"},
            )
            made.raise_for_status()
            ids.append(made.json()["id"])
        channels += [(c, [m.id for m in members]) for c in ids]
    for n in range(CONVERSATIONS):
        members = random.sample(others, 3)
        if n % 2 == 0:
            members.insert(0, alice)
        if n < 2:
            members.insert(0, carol)
        channels.append((await make_group(client, members), [m.id for m in members]))
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_channels (k int, id uuid, authors uuid[], base bigint)"
        )
        await conn.executemany(
            "INSERT INTO bench_channels VALUES ($1, $2, $3, "
            "(SELECT last_seq FROM channels WHERE id = $2))",
            [(k, c, a) for k, (c, a) in enumerate(channels)],
        )
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_search_idx'"
        )
        await conn.execute("DROP INDEX messages_search_idx")
        started = time.perf_counter()
        for start in range(1, total + 1, BATCH):
            await conn.execute(INSERT, start, min(total, start + BATCH - 1), total, len(channels))
            await conn.execute(
                "UPDATE bench_channels b SET base = "
                "(SELECT COALESCE(max(seq), 0) FROM messages WHERE channel_id = b.id)"
            )
            print(
                f"  {min(total, start + BATCH - 1):>9,} messages  {time.perf_counter() - started:6.0f} s",
                flush=True,
            )
        await conn.execute(
            "UPDATE channels c SET last_seq = m.top FROM "
            "(SELECT channel_id, max(seq) AS top FROM messages GROUP BY channel_id) m "
            "WHERE m.channel_id = c.id"
        )
        await conn.execute("SET maintenance_work_mem = '1GB'")
        built = time.perf_counter()
        await conn.execute(index)  # (as the migrations made it)
        print(f"  search index built in {time.perf_counter() - built:.0f} s")
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()
    me = await client.get("/api/users/@me", headers=others[3].headers)
    me.raise_for_status()
    MIX[7][2][0] = f"from:{me.json()['username']} deploy"
    return {"alice": alice, "carol": carol, "author": others[0]}


async def _sizes(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        row = await conn.fetchrow(
            """
            SELECT count(*) AS n, pg_relation_size('messages_search_idx') AS idx,
                   pg_table_size('messages') AS tbl,
                   avg(pg_column_size(search)) AS vec, avg(pg_column_size(content)) AS content
            FROM messages
            """
        )
    finally:
        await conn.close()
    mib = 1 << 20
    print(
        f"\n{row['n']:,} messages: search index {row['idx'] / mib:,.0f} MiB "
        f"({row['idx'] / row['n']:.0f} B per message); table {row['tbl'] / mib:,.0f} MiB, of which "
        f"the search vectors ~{row['vec'] * row['n'] / mib:,.0f} MiB "
        f"({row['vec']:.0f} B per message; the text itself {row['content']:.0f} B)"
    )


async def _queries(client: httpx.AsyncClient, users: dict[str, User]) -> None:
    print(f"\nlatency per query kind ({ROUNDS} rounds each, one at a time, through HTTP):")
    every: list[float] = []
    for kind, who, queries in MIX:
        times: list[float] = []
        totals: list[int] = []
        for r in range(ROUNDS):
            text = queries[r % len(queries)]
            params = {"q": text}
            if text.endswith(" sort=recent"):
                params = {"q": text.removesuffix(" sort=recent"), "sort": "recent"}
            started = time.perf_counter()
            response = await client.get("/api/search", params=params, headers=users[who].headers)
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                print(f"    {text!r}: {response.status_code} {response.text[:200]}")
                continue
            totals.append(response.json()["total"])
        every += times
        print(
            f"  {kind:<26} p50 {pct(times, 50) * 1000:6.1f} ms  p95 {pct(times, 95) * 1000:6.1f} ms"
            f"  p99 {pct(times, 99) * 1000:6.1f} ms   matches {min(totals, default=0)}-{max(totals, default=0)}"
        )
    print(
        f"  {'all':<26} p50 {pct(every, 50) * 1000:6.1f} ms  p95 {pct(every, 95) * 1000:6.1f} ms"
        f"  p99 {pct(every, 99) * 1000:6.1f} ms"
    )


async def _sends(client: httpx.AsyncClient, who: User, channel: str) -> list[float]:
    times = []
    for i in range(SENDS):
        started = time.perf_counter()
        response = await client.post(
            f"/api/channels/{channel}/messages",
            headers=who.headers,
            json={"content": f"deploy the server {i} at https://example.com/x{i} 数据库 done"},
        )
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    random.seed(11)
    os.environ.update(ENV)
    async with (
        local_server() as (base, _proc, pg),
        httpx.AsyncClient(base_url=base, timeout=60) as client,
    ):
        print(f"building {args.messages:,} messages ...")
        users = await _build(client, pg.url, args.messages)
        await _sizes(pg.url)
        for _ in range(3):  # warm the server and the cache a little
            await client.get("/api/search", params={"q": "people"}, headers=users["alice"].headers)
        await _queries(client, users)
        author = users["author"]
        made = await make_group(client, [author, users["alice"]])
        await _sends(client, author, made)  # warm the send path first, as for the other run
        with_index = await _sends(client, author, made)
        conn = await asyncpg.connect(pg.url)
        try:
            # the search vector, its index, and the newest-first index search added
            await conn.execute("ALTER TABLE messages DROP COLUMN search")
            await conn.execute("DROP INDEX messages_created_idx")
        finally:
            await conn.close()
        await _sends(client, author, made)  # (the server re-prepares its statements)
        without = await _sends(client, author, made)
        print(f"\na send, {SENDS} one after another, end to end through HTTP:")
        for label, times in (("with the search index", with_index), ("without it", without)):
            print(
                f"  {label:<22} median {pct(times, 50) * 1000:5.2f} ms  p99 {pct(times, 99) * 1000:5.2f} ms"
            )
        added = pct(with_index, 50) - pct(without, 50)
        print(f"  the index adds {added * 1000:+.2f} ms to the median send")


if __name__ == "__main__":
    asyncio.run(main())
