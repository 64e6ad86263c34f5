"""The soak: steady mixed traffic for minutes, watching for growth.

    uv run python -m bench.soak                  # 10 minutes
    uv run python -m bench.soak --minutes 2

Starts a durable PostgreSQL and one `xfchat serve`, then for --minutes keeps up: 6
senders at about 5 messages/s each into two groups; 12 SSE receivers and 4 gateway
clients, each dropping its connection and opening a new one every 20-40 s; searches
and pages of older history (2/s each); a sign-in every 10 s. Every 30 s it samples the
server's RSS, open files and threads, its pool and real-time subscriptions (from
/metrics) and PostgreSQL's connections. At the end it prints the samples and the
change from the end of the first minute (warm-up) to the end, against the spread of
the second half. Everything on 127.0.0.1; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import websockets

from bench.connections import one_server, pg_connections
from bench.load import User, make_group, register
from bench.procs import METRICS_HEADERS, XFChat
from bench.wire import Connection, sse_events

SAMPLE_S = 30
WORDS = ["amber", "basalt", "cobalt", "dolomite", "garnet", "jasper"]


@dataclass
class Sample:
    t: float
    rss: float
    fds: int
    threads: int
    pool: int
    subscribers: int
    pg: int
    sent: int


@dataclass
class Counts:
    sent: int = 0
    failed: int = 0
    reconnects: int = 0
    reads: int = 0


async def sender(base: str, user: User, channel: str, until: float, counts: Counts) -> None:
    conn = await Connection.open(base)
    try:
        while time.monotonic() < until:
            body = orjson.dumps({"content": " ".join(random.sample(WORDS, 3))})
            status, _ = await conn.request(
                "PUT", f"/api/channels/{channel}/messages/{uuid.uuid4()}", user.headers, body
            )
            counts.sent += status == 201
            counts.failed += status != 201
            await asyncio.sleep(0.2)
    finally:
        conn.close()


async def churn(kind: str, base: str, user: User, until: float, counts: Counts) -> None:
    """Hold a real-time connection for 20-40 s, drop it, open another."""
    while time.monotonic() < until:
        hold = min(random.uniform(20, 40), max(0.0, until - time.monotonic()))
        with contextlib.suppress(TimeoutError, OSError, websockets.WebSocketException):
            async with asyncio.timeout(hold):
                if kind == "sse":
                    await sse_events(base, "/api/events", user.headers, lambda *_: None)
                else:
                    url = base.replace("http", "ws") + "/api/gateway"
                    async with websockets.connect(url) as ws:
                        hello = orjson.loads(await ws.recv())
                        beat = hello["d"]["heartbeat_interval"] / 1000
                        await ws.send(orjson.dumps({"op": 2, "d": {"token": user.token}}).decode())
                        while True:
                            with contextlib.suppress(TimeoutError):
                                async with asyncio.timeout(beat * 0.8):
                                    async for _ in ws:
                                        pass
                            await ws.send(orjson.dumps({"op": 1, "d": None}).decode())
        counts.reconnects += 1


async def reader(base: str, user: User, channel: str, until: float, counts: Counts) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=user.headers) as client:
        while time.monotonic() < until:
            await client.get("/api/search", params={"q": random.choice(WORDS)})
            await client.get(
                f"/api/channels/{channel}/messages", params={"before": random.randint(2, 500)}
            )
            counts.reads += 2
            await asyncio.sleep(0.5)


async def signer(base: str, name: str, until: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            await client.post(
                "/api/auth/login",
                json={"login": name, "password": "a long load test passphrase"},
            )
            await asyncio.sleep(10)


async def sample(server: XFChat, db_url: str, t0: float, counts: Counts) -> Sample:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{server.base}/metrics", headers=METRICS_HEADERS)).text

    def metric(name: str) -> int:
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        return int(float(match.group(1))) if match else -1

    proc = server.proc
    return Sample(
        time.monotonic() - t0,
        proc.memory_info().rss / 2**20,
        proc.num_fds(),
        proc.num_threads(),
        metric("xfchat_db_pool_size"),
        metric("xfchat_realtime_subscribers"),
        await pg_connections(db_url),
        counts.sent,
    )


def report(samples: list[Sample], counts: Counts, minutes: float) -> None:
    print(f"{'min':>5} {'RSS MiB':>8} {'files':>6} {'threads':>7} {'pool':>5} {'subs':>5} "
          f"{'pg conns':>8} {'sent':>7}")  # fmt: skip
    for s in samples:
        print(f"{s.t / 60:5.1f} {s.rss:8.1f} {s.fds:6d} {s.threads:7d} {s.pool:5d} "
              f"{s.subscribers:5d} {s.pg:8d} {s.sent:7d}")  # fmt: skip
    warm = [s for s in samples if s.t >= 60] or samples
    half = [s for s in samples if s.t >= samples[-1].t / 2]
    first, last = warm[0], samples[-1]
    print(
        f"\n{minutes:.0f} min: {counts.sent} messages sent ({counts.failed} not 201), "
        f"{counts.reads} reads, {counts.reconnects} real-time reconnects"
    )
    print(
        f"RSS from minute {first.t / 60:.1f} to the end: {first.rss:.1f} -> {last.rss:.1f} MiB "
        f"({last.rss - first.rss:+.1f}); second half {min(s.rss for s in half):.1f}-"
        f"{max(s.rss for s in half):.1f} MiB"
    )
    for name in ("fds", "threads", "pool", "pg"):
        values = [getattr(s, name) for s in half]
        print(f"{name} over the second half: {min(values)}-{max(values)}")


async def run(minutes: float) -> None:
    async with one_server(XFCHAT_RATE_SEARCH_USER="1000000/60") as (server, db_url):
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
            users = await register(client, 24)
            groups = [await make_group(client, users[g::2]) for g in range(2)]
            me = (await client.get("/api/users/@me", headers=users[0].headers)).json()
        t0 = time.monotonic()
        until = t0 + minutes * 60
        counts = Counts()
        tasks: list[Any] = [
            *(sender(server.base, users[i], groups[i % 2], until, counts) for i in range(6)),
            *(churn("sse", server.base, users[i], until, counts) for i in range(6, 18)),
            *(churn("ws", server.base, users[i], until, counts) for i in range(18, 22)),
            reader(server.base, users[22], groups[0], until, counts),
            signer(server.base, me["username"], until),
        ]
        running = [asyncio.create_task(t) for t in tasks]
        samples = [await sample(server, db_url, t0, counts)]
        while time.monotonic() < until:
            await asyncio.sleep(min(SAMPLE_S, max(0.0, until - time.monotonic())))
            samples.append(await sample(server, db_url, t0, counts))
        await asyncio.gather(*running, return_exceptions=True)
        report(samples, counts, minutes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(run(min(max(args.minutes, 1), 120)))


if __name__ == "__main__":
    main()
