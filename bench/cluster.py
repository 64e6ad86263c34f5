"""The cluster scenario: primary + streaming standby + PgBouncer + two XFChat processes,
all local, with load and fault checks.

    uv run python -m bench.cluster                  # about 4 minutes
    uv run python -m bench.cluster --seconds 10 --down 5

Starts a durable primary, a standby made with `pg_basebackup`, PgBouncer (Debian's
package, installed if missing) in transaction mode in front of the primary, and two
`xfchat serve` processes whose pools go through PgBouncer and whose LISTEN connections
go straight to the primary. Then, first without the replica and then with it
(XFCHAT_REPLICA_URL; both processes restarted), after a reference run straight to the
primary without PgBouncer:

* the send point: 20 senders x 50 messages, 20 SSE receivers, spread over both
  processes (throughput, send and end-to-end latency at p50/p99);
* the mixed point: for --seconds, 8 senders keep sending while 8 readers search and
  page back through older history (reads/s, p50/p99 per kind, where the reads went).

Then the fault checks, with the replica: the primary stopped for --down seconds under
load (bench.outage's check: answers by status, acknowledged-but-lost, recovery) and
the standby stopped (searches must still answer, from the primary). Everything
started is stopped at the end; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from bench.common import pct
from bench.load import GROUP_MAX, Usage, User, make_group, measure, register
from bench.outage import outage_under_load
from bench.pgcluster import Cluster, ensure_pgbouncer, wait_replayed
from bench.procs import METRICS_HEADERS, XFChat, start_servers
from xfchat.db.migrate import Migrator

WORDS = ["amber", "basalt", "cobalt", "dolomite", "garnet", "jasper", "obsidian", "quartz"]
READ_ENV = {"XFCHAT_RATE_SEARCH_USER": "1000000/60", "XFCHAT_SEARCH_CONCURRENCY": "8"}


async def _reader(base: str, user: User, channel: str, until: float, out: dict[str, list]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=user.headers) as client:
        while time.monotonic() < until:
            if random.random() < 0.5:
                kind, url = "search", f"/api/search?q={random.choice(WORDS)}"
            else:
                kind = "older history"
                url = f"/api/channels/{channel}/messages?before={random.randint(2, 400)}"
            started = time.perf_counter()
            r = await client.get(url)
            out.setdefault(kind, []).append(time.perf_counter() - started)
            out.setdefault("status", []).append(r.status_code)


async def _writer(base: str, user: User, channel: str, until: float, out: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=user.headers) as client:
        while time.monotonic() < until:
            words = " ".join(random.sample(WORDS, 3))
            started = time.perf_counter()
            r = await client.post(f"/api/channels/{channel}/messages", json={"content": words})
            if r.status_code == 201:
                out.append(time.perf_counter() - started)


async def mixed(bases: list[str], users: list[User], channel: str, seconds: float) -> None:
    until = time.monotonic() + seconds
    reads: dict[str, list] = {}
    sends: list[float] = []
    await asyncio.gather(
        *(_writer(bases[i % 2], users[i], channel, until, sends) for i in range(8)),
        *(_reader(bases[i % 2], users[8 + i], channel, until, reads) for i in range(8)),
    )
    statuses = Counter(reads.pop("status", []))
    print(f"  mixed, {seconds:.0f} s: {len(sends) / seconds:,.0f} sends/s "
          f"(p99 {1000 * pct(sends, 99):.1f} ms); reads answered {dict(statuses)}")  # fmt: skip
    for kind, times in sorted(reads.items()):
        print(
            f"    {kind:<14} {len(times) / seconds:6,.0f}/s  p50 "
            f"{1000 * statistics.median(times):6.1f} ms  p99 {1000 * pct(times, 99):6.1f} ms"
        )
    where = Counter[str]()
    for base in bases:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{base}/metrics", headers=METRICS_HEADERS)).text
        for m in re.finditer(r'xfchat_replica_reads_total\{outcome="(\w+)"\} (\S+)', text):
            where[m.group(1)] += int(float(m.group(2)))
    print(f"    reads by where they went: {dict(where) or 'all on the primary (no replica)'}")


async def configuration(
    cluster: Cluster, env: dict[str, str], logs: Path, args: argparse.Namespace
) -> list[XFChat]:
    servers = await start_servers(2, env, logs)
    bases = [s.base for s in servers]
    async with httpx.AsyncClient(base_url=bases[0], timeout=60) as client:
        users = await register(client, 20)
        channel = await make_group(client, users[:GROUP_MAX])
    group_of = {u.id: channel for u in users}
    await measure(
        bases, Usage(servers[0].proc, cluster.primary), users, group_of, senders=20, messages=50,
        receivers=20,
        transport="sse", label="send point: 20 senders x 50 msgs, 20 receivers, 2 processes (CPU and RSS: the first)",
    )  # fmt: skip
    await mixed(bases, users, channel, args.seconds)
    return servers


async def faults(cluster: Cluster, servers: list[XFChat], args: argparse.Namespace) -> None:
    assert cluster.standby is not None
    bases = [s.base for s in servers]
    async with httpx.AsyncClient(base_url=bases[0], timeout=60) as client:
        users = await register(client, 4)
        channel = await make_group(client, users)
    port = cluster.primary.port
    outcome = await outage_under_load(
        bases,
        [u.token for u in users],
        channel,
        database_url=cluster.primary.url,
        stop_db=cluster.primary.stop,
        start_db=lambda: cluster.primary.start(port=port),
        down_s=args.down,
        senders=16,
    )
    print("\nfault: the primary stopped under load (through PgBouncer)")
    print("  " + outcome.report().replace("\n", "\n  "))
    await asyncio.to_thread(cluster.standby.stop)
    statuses = Counter[int]()
    async with httpx.AsyncClient(timeout=30, headers=users[0].headers) as client:
        for i in range(20):
            r = await client.get(f"{bases[i % 2]}/api/search", params={"q": "outage"})
            statuses[r.status_code] += 1
    print(f"fault: the standby stopped: 20 searches answered {dict(statuses)}")


async def run(args: argparse.Namespace) -> None:
    bouncer = await asyncio.to_thread(ensure_pgbouncer)
    if bouncer is None:
        raise SystemExit("pgbouncer is missing and cannot be installed (apt-get, as root)")
    cluster = await asyncio.to_thread(Cluster.start, durable=True, bouncer=bouncer)
    servers: list[XFChat] = []
    try:
        assert cluster.bouncer is not None and cluster.standby is not None
        conn = await asyncpg.connect(cluster.primary.url)
        await Migrator(conn).run()
        version = conn.get_settings().server_version
        await conn.close()
        await wait_replayed(cluster.primary.url, cluster.standby.url)
        print(f"primary + standby PostgreSQL {version} (durable), PgBouncer 1.18 transaction "
              f"mode (pool 20), 2 xfchat processes (pools of 20 through it)")  # fmt: skip
        env = {
            **READ_ENV,
            "DATABASE_URL": cluster.bouncer.url_for("postgres"),
            "XFCHAT_DB_POOLER": "transaction",
            "XFCHAT_LISTEN_URL": cluster.primary.url,
        }
        direct = {**READ_ENV, "DATABASE_URL": cluster.primary.url}
        for label, config in (
            ("reference: straight to the primary, no PgBouncer, no replica", direct),
            ("through PgBouncer, without the replica", env),
            (
                "through PgBouncer, with the replica",
                env | {"XFCHAT_REPLICA_URL": cluster.standby.url},
            ),
        ):
            print(f"\n== {label}")
            for s in servers:
                s.stop()
            servers = await configuration(cluster, config, cluster.root, args)
        await faults(cluster, servers, args)
    finally:
        for s in servers:
            s.stop()
        await asyncio.to_thread(cluster.close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of the mixed point")
    parser.add_argument("--down", type=float, default=5, help="seconds the primary is down")
    args = parser.parse_args()
    args.seconds = min(max(args.seconds, 1), 600)
    args.down = min(max(args.down, 1), 120)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
