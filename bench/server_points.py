"""The server points of `bench.load`:

1. a server channel: 50 senders x 40 messages, 200 receivers online in one channel of a
   1,000-member server (the others are members who are not connected);
2. a 10,000-member server: the member list read end to end (p50/p99 per page of 100 and
   of 1,000), the cost of the permission check on a send (one sender, sends into the
   big server's channel and into a two-person conversation, alternating), and how long
   one permission change (an @everyone override) takes when it must decide, for every
   member, what it reveals or hides.

Members past those who connect are written straight into the database (an argon2 hash
per user would make set-up take minutes, and registration is not what is measured);
everyone who sends or receives registers and joins over HTTP.
"""

from __future__ import annotations

import secrets
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.common import pct
from bench.load import Result, Run, Usage, User, compare, measure, register, send_all


async def make_server(
    client: httpx.AsyncClient, owner: User, joiners: list[User]
) -> dict[str, Any]:
    made = await client.post("/api/servers", headers=owner.headers, json={"name": "load"})
    made.raise_for_status()
    server = made.json()
    invite = await client.post(
        f"/api/servers/{server['id']}/invites",
        headers=owner.headers,
        json={"max_uses": None, "max_age_s": None},
    )
    invite.raise_for_status()
    for user in joiners:
        (
            await client.post(f"/api/invites/{invite.json()['code']}", headers=user.headers)
        ).raise_for_status()
    return dict(server)


async def _fill(pg_url: str, server_id: str, members: int) -> None:
    """Add members (users who never connect) until the server has `members`."""
    conn = await asyncpg.connect(pg_url)
    try:
        have = await conn.fetchval(
            "SELECT count(*) FROM server_members WHERE server_id = $1", uuid.UUID(server_id)
        )
        tag = secrets.token_hex(3)
        await conn.execute(
            """
            WITH u AS (
                INSERT INTO users (username, email, email_key, password_hash)
                SELECT 'fill' || $2 || g, 'fill' || $2 || g || '@example.com',
                       'fill' || $2 || g || '@example.com', 'x'
                FROM generate_series(1, $3) g
                RETURNING id
            )
            INSERT INTO server_members (server_id, user_id) SELECT $1, id FROM u
            """,
            uuid.UUID(server_id),
            tag,
            max(0, members - have),
        )
    finally:
        await conn.close()


async def server_channel_point(
    base: str, usage: Usage, pg_url: str, *, transport: str, members: int = 1000
) -> Result:
    senders, messages, receivers = 50, 40, 200
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        users = await register(client, receivers)
        server = await make_server(client, users[0], users[1:])
    if pg_url:  # (the ceiling has no database: members who never connect cost it nothing)
        await _fill(pg_url, server["id"], members)
    general = server["channels"][0]["id"]
    return await measure(
        base,
        usage,
        users,
        {u.id: general for u in users},
        senders=senders,
        messages=messages,
        receivers=receivers,
        transport=transport,
        label=SERVER_CHANNEL.format(senders, messages, receivers, members),
    )


SERVER_CHANNEL = (
    "server channel: {} senders x {} msgs, {} receivers online in one channel of a "
    "{:,}-member server"
)


async def big_server_point(base: str, usage: Usage, pg_url: str, *, members: int = 10_000) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        owner, friend = await register(client, 2)
        server = await make_server(client, owner, [friend])
        await _fill(pg_url, server["id"], members)
        conversation = await client.post(
            "/api/conversations",
            headers=owner.headers,
            json={"kind": "direct", "user_id": friend.id},
        )
        conversation.raise_for_status()
        start = usage.mark()
        pages: dict[int, list[float]] = {100: [], 1000: []}
        for limit in pages:
            after = None
            while True:
                params = {"limit": limit} | ({"after": after} if after else {})
                t0 = time.perf_counter()
                page = await client.get(
                    f"/api/servers/{server['id']}/members", params=params, headers=owner.headers
                )
                pages[limit].append(time.perf_counter() - t0)
                page.raise_for_status()
                body = page.json()
                if len(body) < limit:
                    break
                after = body[-1]["user"]["id"]
        print(f"\n{members:,}-member server")
        for limit, times in pages.items():
            print(
                f"  member list, {limit} per page: {len(times)} pages, "
                f"p50 {1000 * statistics.median(times):.1f} ms, p99 {1000 * pct(times, 99):.1f} ms"
            )
        channel = server["channels"][0]["id"]
        direct = conversation.json()["id"]
        latency: dict[str, list[float]] = {channel: [], direct: []}
        for _ in range(10):  # alternate: the same conditions for both
            for target in (channel, direct):
                run = Run()
                await send_all(base, owner, target, 30, run)
                latency[target] += run.send_latency
        a, b = latency[channel], latency[direct]
        print(
            f"  send, 1 sender, 300 each: server channel p50 {1000 * statistics.median(a):.2f} ms"
            f" p99 {1000 * pct(a, 99):.2f} ms; direct conversation p50"
            f" {1000 * statistics.median(b):.2f} ms p99 {1000 * pct(b, 99):.2f} ms;"
            f" the permission check's extra cost at p50: "
            f"{1000 * (statistics.median(a) - statistics.median(b)):+.2f} ms"
        )
        changes: list[float] = []
        override = (
            f"/api/channels/{channel}/overrides/role/{next(r['id'] for r in server['roles'])}"
        )
        for i in range(6):
            body = {"deny": "2"} if i % 2 == 0 else {"deny": "0"}  # SEND_MESSAGES on/off
            t0 = time.perf_counter()
            (await client.put(override, headers=owner.headers, json=body)).raise_for_status()
            changes.append(time.perf_counter() - t0)
        print(
            f"  one @everyone override change (decides for {members:,} members what it"
            f" reveals or hides): p50 {1000 * statistics.median(changes):.0f} ms,"
            f" max {1000 * max(changes):.0f} ms"
        )
        print(f"  {usage.report(start)}")


async def server_points(targets: list[tuple[str, Usage]], pg_url: str, *, transport: str) -> None:
    """The server-channel point against every target (XFChat first, then the ceiling),
    then the big server's figures (XFChat only)."""
    if not pg_url:
        print("\n(server points skipped: they need DATABASE_URL to add members)")
        return
    print(f"\n{SERVER_CHANNEL.format(50, 40, 200, 1000)}  [{transport}]")
    results = {}
    for base, usage in targets:
        xfchat = usage.name == "XFChat"
        results[usage.name] = await server_channel_point(
            base, usage, pg_url if xfchat else "", transport=transport
        )
    if len(results) == 2:
        compare("server channel", results["XFChat"], results["ceiling"])
    base, usage = targets[0]
    await big_server_point(base, usage, pg_url)
