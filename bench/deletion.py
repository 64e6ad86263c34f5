"""Deleting a channel of many messages, and what waits for it.

    uv run python -m bench.deletion [--messages N] [--runs K] [--groups G] [--servers S]

A durable local PostgreSQL and one `xfchat serve` (as `bench.load` starts them), a server
made over HTTP with a member, and a channel of N messages (150,000 by default: the
scale audit's figure) filled straight through SQL (every tenth a reply to the one
before, as `tests/api/test_retention_attacks.py` fills one), then VACUUM ANALYZE. Then,
K times (1 by default), on a channel filled again:
- `DELETE /api/channels/{id}` by the owner, and 50 ms into it, in the same server, a
  role created (`POST /api/servers/{id}/roles`: it locks the server's row, as joins,
  channel and role changes and voice moves do) and a message sent in #general: the
  latency of each;
- then the purge of the deleted channel's messages (`purge_deleted_channels`, migration
  0055: what the server's job does every 10 seconds), on a pool of the server's
  settings: its time and messages a second, and how many messages the channel still
  holds after;
- then a server made with its #general filled likewise, `DELETE /api/servers/{id}` by
  its owner: its latency, and the purge after it.

- then an account in G groups (1,000 by default: a user's cap) of three, owning every
  other one, filled straight through SQL, and a member of S servers (200: the cap) made
  over HTTP by two others: `POST /api/users/@me/delete`, and 50 ms into it a message
  sent by another participant in the account's last group (the deletion holds each
  group's row, and each of its servers' channels', while it runs): the latency of each.

Before migration 0055 the messages went inside the deletion's transaction: the scale
audit measured 26.5 s for a channel of 150,000 and 44.5 s for a server of 300,000, the
role creation waiting as long. Nothing here is
asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable
from uuid import UUID

import asyncpg
import httpx

from bench.load import User, local_server, register
from xfchat.db.pool import create_pool
from xfchat.domain.messages_purge import purge_deleted_channels
from xfchat.settings import DatabaseSettings

FILL = """
INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
SELECT gen_random_uuid(), $1, i, $2, 'message number ' || i || ' of the long history',
       now() - make_interval(secs => $3::int - i)
FROM generate_series(1, $3::int) i
"""
REPLIES = """
UPDATE messages m SET reply_to_id = p.id FROM messages p
WHERE m.channel_id = $1 AND p.channel_id = $1 AND p.seq = m.seq - 1 AND m.seq % 10 = 0
"""


async def timed(request: Awaitable[httpx.Response], start: float) -> tuple[float, int]:
    """How long after `start` the request's answer came, and its status."""
    response = await request
    return time.perf_counter() - start, response.status_code


async def fill(url: str, channel: str, author: str, n: int) -> None:
    """`n` messages in the channel, straight through SQL, then VACUUM ANALYZE."""
    fill_start = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FILL, UUID(channel), UUID(author), n)
        # (statistics of these rows before the replies' join: those of a channel filled
        # and purged before planned it as a loop over the whole channel, 270 s)
        await conn.execute("ANALYZE messages")
        await conn.execute(REPLIES, UUID(channel))
        await conn.execute("UPDATE channels SET last_seq = $2 WHERE id = $1", UUID(channel), n)
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()
    print(f"  filled {n:,} messages in {time.perf_counter() - fill_start:.1f} s")


async def purge(url: str, channel: str) -> None:
    """The purge of the deleted channels' messages, as the server's job runs it."""
    pool = await create_pool(DatabaseSettings(database_url=url))
    try:
        start = time.perf_counter()
        purged = await purge_deleted_channels(pool)
        took = time.perf_counter() - start
        async with pool.acquire() as c:
            left = await c.fetchval(
                "SELECT count(*) FROM messages WHERE channel_id = $1", UUID(channel)
            )
    finally:
        await pool.close()
    rate = purged / took if took else 0.0
    print(
        f"  purge after it: {purged:,} messages in {took:.1f} s ({rate:,.0f} a second),"
        f" {left} left in the channel"
    )


async def channel_run(
    client: httpx.AsyncClient, url: str, owner: User, server: dict[str, object], n: int
) -> None:
    server_id = str(server["id"])
    general = next(str(c["id"]) for c in server["channels"] if c["name"] == "general")  # type: ignore[attr-defined]
    made = await client.post(
        f"/api/servers/{server_id}/channels",
        headers=owner.headers,
        json={"name": "doomed", "kind": "text"},
    )
    made.raise_for_status()
    channel = made.json()["id"]
    await fill(url, channel, owner.id, n)

    started = time.perf_counter()
    deletion = asyncio.ensure_future(
        timed(client.delete(f"/api/channels/{channel}", headers=owner.headers), started)
    )
    await asyncio.sleep(0.05)
    meanwhile = time.perf_counter()
    role = client.post(
        f"/api/servers/{server_id}/roles", headers=owner.headers, json={"name": "waiter"}
    )
    send = client.post(
        f"/api/channels/{general}/messages", headers=owner.headers, json={"content": "meanwhile"}
    )
    (d_s, d_status), (r_s, r_status), (s_s, s_status) = await asyncio.gather(
        deletion, timed(role, meanwhile), timed(send, meanwhile)
    )
    print(f"  DELETE /api/channels/{{id}}: {d_status} in {d_s * 1000:,.0f} ms")
    print(
        f"  a role created meanwhile (locks the server's row): {r_status} in {r_s * 1000:,.0f} ms"
    )
    print(f"  a message sent meanwhile in #general: {s_status} in {s_s * 1000:,.0f} ms")
    await purge(url, channel)


async def server_run(client: httpx.AsyncClient, url: str, owner: User, n: int) -> None:
    made = await client.post("/api/servers", headers=owner.headers, json={"name": "doomed"})
    made.raise_for_status()
    server = made.json()
    general = next(str(c["id"]) for c in server["channels"] if c["name"] == "general")
    await fill(url, general, owner.id, n)
    start = time.perf_counter()
    gone = await client.delete(f"/api/servers/{server['id']}", headers=owner.headers)
    took = time.perf_counter() - start
    print(
        f"  DELETE /api/servers/{{id}} (its #general of {n:,}): {gone.status_code} in {took * 1000:,.0f} ms"
    )
    await purge(url, general)


GROUPS = """
WITH made AS (
    INSERT INTO channels (kind, name, owner_id)
    SELECT 'group', 'group ' || i, CASE WHEN i % 2 = 0 THEN $1::uuid ELSE $2::uuid END
    FROM generate_series(1, $4::int) i
    RETURNING id
)
INSERT INTO conversation_participants (channel_id, user_id, joined_at)
SELECT made.id, p.user_id, now() - make_interval(secs => p.n)
FROM made, unnest($3::uuid[]) WITH ORDINALITY AS p(user_id, n)
"""


async def account_run(client: httpx.AsyncClient, url: str, groups: int, servers: int) -> None:
    leaver, other, third = await register(client, 3)
    made = []
    for k in range(servers):  # (two owners: one may be in 200 servers)
        owner = (other, third)[k % 2]
        answer = await client.post("/api/servers", headers=owner.headers, json={"name": f"s{k}"})
        answer.raise_for_status()
        made.append(UUID(answer.json()["id"]))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO server_members (server_id, user_id) SELECT unnest($1::uuid[]), $2",
            made,
            UUID(leaver.id),
        )
        # (the leaver joined each first: it owns half, and hands those to `other`)
        people = [UUID(third.id), UUID(other.id), UUID(leaver.id)]
        await conn.execute(GROUPS, UUID(leaver.id), UUID(other.id), people, groups)
        last = await conn.fetchval(
            "SELECT channel_id FROM conversation_participants WHERE user_id = $1"
            " ORDER BY channel_id DESC LIMIT 1",
            UUID(leaver.id),
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    started = time.perf_counter()
    deletion = asyncio.ensure_future(
        timed(
            client.post(
                "/api/users/@me/delete",
                headers=leaver.headers,
                json={"password": "a long load test passphrase"},
            ),
            started,
        )
    )
    await asyncio.sleep(0.05)
    meanwhile = time.perf_counter()
    send = client.post(
        f"/api/channels/{last}/messages", headers=other.headers, json={"content": "meanwhile"}
    )
    (d_s, d_status), (s_s, s_status) = await asyncio.gather(deletion, timed(send, meanwhile))
    print(
        f"  POST /api/users/@me/delete ({groups:,} groups, {servers} servers):"
        f" {d_status} in {d_s * 1000:,.0f} ms"
    )
    print(f"  a message sent meanwhile in its last group: {s_status} in {s_s * 1000:,.0f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--servers", type=int, default=200)
    args = parser.parse_args()
    async with local_server() as (base, _proc, pg):
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            (owner,) = await register(client, 1)
            made = await client.post("/api/servers", headers=owner.headers, json={"name": "big"})
            made.raise_for_status()
            server = made.json()
            print(
                f"xfchat serve on {base}, PostgreSQL {pg.binaries.major} (durable), "
                f"a channel of {args.messages:,} messages, {args.runs} run(s)"
            )
            for _ in range(args.runs):
                print("a channel deleted:")
                await channel_run(client, pg.url, owner, server, args.messages)
                print("a server deleted:")
                await server_run(client, pg.url, owner, args.messages)
                print("an account deleted:")
                await account_run(client, pg.url, args.groups, args.servers)


if __name__ == "__main__":
    asyncio.run(main())
