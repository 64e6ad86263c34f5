"""Resume tokens: their size, and what producing one costs per delivered event, for a
user who follows 10 streams, 1,000 (conversations), and 6,000 (100 servers of 50
channels each, plus 1,000 conversations).

    uv run python -m bench.resume [--events 20000]

Builds the users on a durable local PostgreSQL (or BENCH_DATABASE_URL), opens a real
subscription for each through a running hub, then times the hub handing events of one
followed channel to that subscriber and the subscriber producing each event's token
(the whole per-event path of an SSE delivery, framing included, without the socket). For comparison it prints
what the previous design's token (a position per followed stream, re-encoded for every
event) would weigh and cost for the same user. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import statistics
import time
import uuid
from uuid import UUID

import asyncpg

from bench.common import database, env_url
from xfchat.api.sse import frames
from xfchat.db.pool import connect, create_pool
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import friends as friends_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import users as users_q
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import create_group
from xfchat.domain.events import Stream
from xfchat.domain.permissions import EVERYONE_DEFAULT
from xfchat.realtime.cursor import TokenCodec
from xfchat.realtime.feeds import open_user_feed
from xfchat.realtime.hub import Hub
from xfchat.settings import Settings

SECRET = "a benchmark secret, not used for anything else at all"


async def make_user(conn: asyncpg.Connection, name: str) -> UUID:
    row = await users_q.insert_user(
        conn,
        user_id=uuid.uuid4(),
        username=name,
        email=f"{name}@example.com",
        email_key=f"{name}@example.com",
        password_hash="x",
        display_name=None,
    )
    return row.id


async def session_for(conn: asyncpg.Connection, user_id: UUID) -> Actor:
    session = await sessions_q.insert_session(
        conn, user_id=user_id, user_agent="bench", ip=None, ttl_s=86400
    )
    return Actor(user_id, session.id)


async def follower(pool: asyncpg.Pool, conversations: int, servers: int) -> Actor:
    """A user in `conversations` groups and `servers` servers of 50 text channels."""
    tag = uuid.uuid4().hex[:8]
    async with pool.acquire() as conn:
        me = await make_user(conn, f"u{tag}")
        other = await make_user(conn, f"o{tag}")
        actor = await session_for(conn, me)
        await friends_q.insert_friendship(conn, user_a=me, user_b=other)  # groups take friends
        for _ in range(conversations):
            await create_group(conn, actor, name="g", participant_ids=[other])
        for s in range(servers):
            async with conn.transaction():
                server = await servers_q.insert_server(conn, name=f"s{s}", owner_id=other)
                await roles_q.insert_role(
                    conn,
                    server_id=server.id,
                    name="@everyone",
                    permissions=int(EVERYONE_DEFAULT),
                    position=0,
                    is_default=True,
                )
                await servers_q.insert_server_member(conn, server_id=server.id, user_id=me)
                for c in range(50):
                    await channels_q.insert_channel(
                        conn, server_id=server.id, kind="text", name=f"c{c}", position=c
                    )
    return actor


def old_token(positions: dict[int, int]) -> str:
    """The previous design's token: varint pairs (stream id delta, position), sorted."""
    out = bytearray()

    def varint(n: int) -> None:
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | 0x80 if n else byte)
            if not n:
                return

    previous = 0
    for stream_id in sorted(positions):
        varint(stream_id - previous)
        varint(positions[stream_id])
        previous = stream_id
    return "1." + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


async def measure(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, events: int
) -> tuple[int, float, int, float]:
    sub, _, _ = await open_user_feed(hub, pool, actor, None)
    while await sub.next(idle_s=0.2) is not None:  # catch up, go live
        pass
    assert sub.live
    followed = len(sub.follows.streams())
    channel = Stream.channel(next(iter(sub.follows.channels)))
    data = {"id": str(uuid.uuid4()), "content": "x" * 200}
    per_event: list[float] = []
    g = hub.last_g
    gc.collect()
    gc.freeze()  # what was built before is not what is timed: keep the collector off it
    for batch in range(events // 100):
        started = time.perf_counter()
        for i in range(100):
            g += 1
            hub._dispatch(g, channel, [(batch * 100 + i + 1, "message.created", data)])
        handed = await sub.next_batch(1000)
        written = frames(handed or [], sub)  # what SSE writes, tokens included
        per_event.append((time.perf_counter() - started) / 100)
        assert handed is not None and len(handed) == 100 and written.count(b"id: ") == 100
    gc.unfreeze()
    token = sub.token()
    sub.close("bench")
    positions = {i: 1_000_000 + i for i in range(1, followed + 1)}
    started = time.perf_counter()
    for _ in range(200):
        old = old_token(positions)
    old_cost = (time.perf_counter() - started) / 200
    return followed, len(token), statistics.median(per_event), len(old), old_cost


async def main(events: int) -> None:
    async with database(env_url()) as url:
        settings = Settings(database_url=url, secret=SECRET, pool_max=10)  # type: ignore[call-arg]
        pool = await create_pool(settings)
        hub = Hub(pool, lambda: connect(settings), TokenCodec(SECRET))
        await hub.start()
        await hub.wait_listening(10)
        try:
            await measure(hub, pool, await follower(pool, 1, 0), events)  # warm up
            print(
                "followed streams (user + channels) | token now | per event now (hub + token)"
                " | previous design's token | its cost per event"
            )
            for conversations, servers in ((9, 0), (999, 0), (999, 100)):
                actor = await follower(pool, conversations, servers)
                followed, size, cost, old_size, old_cost = await measure(hub, pool, actor, events)
                print(
                    f"{followed:>34,} | {size:>5} B   | {cost * 1e6:>8.2f} µs"
                    f"                  | {old_size:>9,} B"
                    f"             | {old_cost * 1e6:>9.1f} µs"
                )
        finally:
            await hub.stop()
            await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().events))
