"""Memory per idle real-time connection: SSE and the WebSocket gateway.

    uv run python -m bench.connections               # 1,000 of each
    uv run python -m bench.connections --count 2000

Starts a durable PostgreSQL and one `xfchat serve`, registers count/5 users (five
connections each), and for each kind: opens and closes 50 connections (so that code
and caches are warm), takes the server's RSS at rest, opens `count` connections that
then stay idle (each has received its `ready`), takes the RSS again after 3 s, and
closes them all. Prints the RSS added per connection, the server's open files, and
PostgreSQL's connection count (an idle stream holds no database connection).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import websockets

from bench.load import User, register
from bench.procs import METRICS_HEADERS, XFChat, local_servers

PER_USER = 5
BATCH = 50  # connections opened at once


async def open_sse(base: str, user: User) -> Callable[[], Awaitable[None]]:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.token}"
        "\r\n\r\n".encode()
    )
    seen = b""
    while b"event: ready" not in seen:
        chunk = await reader.read(65536)
        if not chunk:
            raise SystemExit(f"an SSE stream ended before its ready event: {seen[:300]!r}")
        seen += chunk

    async def close() -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return close


async def open_gateway(base: str, user: User) -> Callable[[], Awaitable[None]]:
    ws = await websockets.connect(base.replace("http", "ws") + "/api/gateway", max_size=None)
    await ws.recv()  # hello
    await ws.send(orjson.dumps({"op": 2, "d": {"token": user.token}}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("t") == "ready":
            break
    return ws.close  # type: ignore[no-any-return]


OPENERS = {"SSE": open_sse, "gateway (WebSocket)": open_gateway}


async def open_many(
    opener: Callable[[str, User], Awaitable[Callable[[], Awaitable[None]]]],
    base: str,
    users: list[User],
    count: int,
) -> list[Callable[[], Awaitable[None]]]:
    closers: list[Callable[[], Awaitable[None]]] = []
    for start in range(0, count, BATCH):
        batch = range(start, min(count, start + BATCH))
        closers += await asyncio.gather(*(opener(base, users[i // PER_USER]) for i in batch))
    return closers


async def settled_rss(proc: psutil.Process, seconds: float = 3) -> float:
    await asyncio.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(proc.memory_info().rss / 2**20)
        await asyncio.sleep(0.2)
    return sum(samples) / len(samples)


async def subscribers(base: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{base}/metrics", headers=METRICS_HEADERS)).text
    match = re.search(r"^xfchat_realtime_subscribers (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else -1


async def pg_connections(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return (
            int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                )
            )
            - 1
        )
    finally:
        await conn.close()


async def measure_kind(
    kind: str, server: XFChat, users: list[User], count: int, db_url: str
) -> None:
    opener = OPENERS[kind]
    for close in await open_many(opener, server.base, users, BATCH):
        await close()
    proc = server.proc
    before = await settled_rss(proc)
    fds_before, pg_before = proc.num_fds(), await pg_connections(db_url)
    closers = await open_many(opener, server.base, users, count)
    during = await settled_rss(proc)
    live, fds, pg = await subscribers(server.base), proc.num_fds(), await pg_connections(db_url)
    for close in closers:
        await close()
    after = await settled_rss(proc)
    per = (during - before) * 1024 / count
    print(
        f"{kind}: {count} idle connections ({live} subscriptions on the server)\n"
        f"  server RSS {before:.1f} -> {during:.1f} MiB: {per:.1f} KiB per connection; "
        f"{after:.1f} MiB after closing them all\n"
        f"  server open files {fds_before} -> {fds}; PostgreSQL connections {pg_before} -> {pg}"
    )


@contextlib.asynccontextmanager
async def one_server(**env: str) -> AsyncIterator[tuple[XFChat, str]]:
    async with local_servers(1, "xfconn-", **env) as (servers, pg):
        yield servers[0], pg.url


async def run(count: int) -> None:
    async with one_server() as (server, db_url):
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
            users = await register(client, (count + PER_USER - 1) // PER_USER)
        print(f"xfchat serve on {server.base}; {len(users)} users, {PER_USER} connections each")
        for kind in OPENERS:
            await measure_kind(kind, server, users, count, db_url)


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="connections of each kind")
    args = parser.parse_args(argv)
    asyncio.run(run(min(max(args.count, BATCH), 10_000)))


if __name__ == "__main__":
    main()
