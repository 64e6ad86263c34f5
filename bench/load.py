"""Load: K senders x M messages into one conversation, R subscribed receivers.

    uv run python -m bench.load                 # every point quoted in the README
    uv run python -m bench.load --senders 10 --messages 100 --receivers 10 [--transport ws]
    uv run python -m bench.load --target http://host:3000   # a running server

Starts a durable local PostgreSQL and a real `xfchat serve` process (unless --target),
registers users over HTTP, puts them in group conversations (at most 25 people each),
opens one real-time connection per receiver (SSE by default, or the WebSocket gateway),
then every sender PUTs its messages one after another. It prints the send throughput,
send latency (request to response), end-to-end latency (send start to arrival at a
receiver, over every message x receiver), the delivery ratio and rate, the CPU of the
server process, of PostgreSQL and of the load generator, and the server's memory (RSS).
Nothing here is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psutil
import websockets

from bench.common import pct
from bench.procs import METRICS_HEADERS, free_port, local_servers, stop_process, wait_ready
from bench.wire import Connection, message_id, sse_events

GROUP_MAX = 25
SEND_TIMEOUT_S = 120  # a generous bound on one point's sends
# (senders, messages each, receivers, label): what `bench.load` runs without --senders
DEFAULT_POINTS = [
    (10, 100, 10, "10 senders x 100 msgs, 10 receivers"),
    (50, 40, 50, "50 senders x 40 msgs, 50 receivers"),
    (100, 10, 100, "100 concurrent users (4 groups of 25), each sends 10 and receives"),
]
PAGE = 100


@dataclass
class User:
    id: str
    token: str
    username: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Run:
    sends: dict[str, float] = field(default_factory=dict)  # message id -> send start
    send_latency: list[float] = field(default_factory=list)
    # (receiver index, message id, arrival time)
    arrivals: list[tuple[int, str, float]] = field(default_factory=list)
    failed: int = 0


# ----------------------------------------------------------------------- the server


@contextlib.asynccontextmanager
async def local_server() -> AsyncIterator[tuple[str, psutil.Process, Any]]:
    async with local_servers(1, "xfload-") as (servers, pg):
        yield servers[0].base, servers[0].proc, pg


@contextlib.asynccontextmanager
async def ceiling_server(raw: bool = False) -> AsyncIterator[tuple[str, psutil.Process]]:
    """The in-memory ceiling (bench/ceiling.py) as its own process."""
    port = free_port()
    command = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
    proc = psutil.Popen(command + (["--raw"] if raw else []))
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, proc, "the ceiling")
        yield base, proc
    finally:
        stop_process(proc)


class Usage:
    """CPU seconds and memory of the server process and of PostgreSQL between marks."""

    def __init__(self, server: psutil.Process | None, pg: Any, name: str = "XFChat") -> None:
        self.me = psutil.Process()
        self.server = server
        self.pg = psutil.Process(pg.pid) if pg is not None and pg.pid else None
        self.name = name

    def _pg_procs(self) -> list[psutil.Process]:
        if self.pg is None:
            return []
        return [self.pg, *self.pg.children(recursive=True)]

    def _server_procs(self) -> list[psutil.Process]:
        """The server process and its workers (`xfchat serve --workers N`)."""
        if self.server is None:
            return []
        try:
            return [self.server, *self.server.children()]
        except psutil.Error:
            return [self.server]

    def mark(self) -> tuple[float, float, float, float]:
        def cpu(p: psutil.Process) -> float:
            try:
                t = p.cpu_times()
                return float(t.user + t.system)
            except psutil.Error:
                return 0.0

        return (
            time.perf_counter(),
            sum(cpu(p) for p in self._server_procs()),
            sum(cpu(p) for p in self._pg_procs()),
            cpu(self.me),
        )

    def report(self, start: tuple[float, float, float, float]) -> str:
        end = self.mark()
        wall = end[0] - start[0]
        me = f"load generator CPU {100 * (end[3] - start[3]) / wall:.0f} %"
        if self.server is None:
            return f"server CPU: not measured (--target); {me}"
        rss = sum(p.memory_info().rss for p in self._server_procs()) / 2**20
        pg = f"PostgreSQL CPU {100 * (end[2] - start[2]) / wall:.0f} %; " if self.pg else ""
        return (
            f"server CPU {100 * (end[1] - start[1]) / wall:.0f} % of a core, RSS {rss:.0f} MiB; "
            f"{pg}{me}"
        )


# ------------------------------------------------------------------------- set-up


async def register(client: httpx.AsyncClient, n: int) -> list[User]:
    async def one(i: int) -> User:
        name = f"load{secrets.token_hex(4)}{i}"
        r = await client.post(
            "/api/auth/register",
            json={
                "username": name,
                "email": f"{name}@example.com",
                "password": "a long load test passphrase",
            },
        )
        r.raise_for_status()
        body = r.json()
        return User(body["user"]["id"], body["access_token"], name)

    users: list[User] = []
    for start in range(0, n, 8):
        users += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 8))))
    return users


async def befriend(client: httpx.AsyncClient, owner: User, others: list[User]) -> None:
    """A request from `owner` to each of `others` not yet a friend, accepted (a group
    takes only its owner's friends)."""
    for other in others:
        sent = await client.post(
            "/api/users/@me/friend-requests",
            headers=owner.headers,
            json={"username": other.username},
        )
        if sent.status_code == 409 and sent.json()["code"] == "ALREADY_FRIENDS":
            continue
        sent.raise_for_status()
        accepted = await client.post(
            f"/api/users/@me/friend-requests/{sent.json()['id']}/accept", headers=other.headers
        )
        accepted.raise_for_status()


async def make_group(client: httpx.AsyncClient, members: list[User]) -> str:
    await befriend(client, members[0], members[1:])
    r = await client.post(
        "/api/conversations",
        headers=members[0].headers,
        json={"kind": "group", "name": "load", "participant_ids": [m.id for m in members[1:]]},
    )
    r.raise_for_status()
    return str(r.json()["id"])


# ---------------------------------------------------------------------- receivers


async def receive_sse(base: str, user: User, index: int, run: Run, ready: asyncio.Event) -> None:
    def on_event(event: bytes, data: bytes, now: float) -> None:
        if event == b"message.created":
            run.arrivals.append((index, message_id(data), now))
        elif event == b"ready":
            ready.set()

    await sse_events(base, "/api/events", user.headers, on_event)


async def receive_ws(base: str, user: User, index: int, run: Run, ready: asyncio.Event) -> None:
    async with websockets.connect(base.replace("http", "ws") + "/api/gateway", max_size=None) as ws:
        await ws.recv()
        await ws.send(orjson.dumps({"op": 2, "d": {"token": user.token}}).decode())
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("t") == "ready":
                ready.set()
            elif frame.get("t") == "message.created":
                run.arrivals.append((index, frame["d"]["id"], time.perf_counter()))


RECEIVERS = {"sse": receive_sse, "ws": receive_ws}


# ------------------------------------------------------------------------ sending


async def send_all(base: str, user: User, conversation: str, count: int, run: Run) -> None:
    conn = await Connection.open(base)
    headers = user.headers
    try:
        for i in range(count):
            mid = str(uuid.uuid4())
            body = orjson.dumps({"content": f"load message {i}"})
            started = time.perf_counter()
            run.sends[mid] = started
            status, _ = await conn.request(
                "PUT", f"/api/channels/{conversation}/messages/{mid}", headers, body
            )
            run.send_latency.append(time.perf_counter() - started)
            if status != 201:
                run.failed += 1
    finally:
        conn.close()


async def bounded(what: str, *senders: Awaitable[None]) -> None:
    """Run the senders together, failing if they take longer than SEND_TIMEOUT_S."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await asyncio.gather(*senders)
    except TimeoutError:
        raise SystemExit(f"{what} did not finish within {SEND_TIMEOUT_S} s") from None


# ------------------------------------------------------------------------- points


async def point(
    base: str,
    usage: Usage,
    *,
    senders: int,
    messages: int,
    receivers: int,
    transport: str,
    label: str,
    deliveries: bool = True,
) -> Result:
    """`senders` x `messages` into group conversations of at most 25 people; every
    receiver follows the group its user is in (without `deliveries`, a server that
    delivers nothing: bench/bound.py's, nothing is waited for)."""
    people = max(senders, receivers)
    groups = (people + GROUP_MAX - 1) // GROUP_MAX
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        users = await register(client, people)
        members = [users[g::groups] for g in range(groups)]
        conversations = [await make_group(client, m) for m in members]
    group_of = {u.id: conversations[g] for g, ms in enumerate(members) for u in ms}
    return await measure(
        base,
        usage,
        users,
        group_of,
        senders=senders,
        messages=messages,
        receivers=receivers,
        transport=transport,
        label=label,
        deliveries=deliveries,
    )


async def measure(
    base: str | list[str],
    usage: Usage,
    users: list[User],
    group_of: dict[str, str],
    *,
    senders: int,
    messages: int,
    receivers: int,
    transport: str,
    label: str,
    deliveries: bool = True,
) -> Result:
    """The first `senders` users send `messages` each into their channel (`group_of`),
    while the first `receivers` users each hold one real-time connection; with several
    bases (server processes), user i uses bases[i % len(bases)]."""
    bases = [base] if isinstance(base, str) else base
    run = Run()
    readies = [asyncio.Event() for _ in range(receivers)]
    tasks = [
        asyncio.create_task(
            RECEIVERS[transport](bases[j % len(bases)], users[j], j, run, readies[j])
        )
        for j in range(receivers)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    # every message reaches the receivers in its sender's group
    listening = Counter(group_of[users[j].id] for j in range(receivers))
    expected = messages * sum(listening[group_of[users[i].id]] for i in range(senders))
    expected *= deliveries
    start = usage.mark()
    written = await writer_counts(bases)
    t0 = time.perf_counter()
    await bounded(
        "the senders",
        *(
            send_all(bases[i % len(bases)], users[i], group_of[users[i].id], messages, run)
            for i in range(senders)
        ),
    )
    sent_in = time.perf_counter() - t0
    writer = await writer_line(bases, written, sent_in)
    deadline = time.perf_counter() + 15
    while len(run.arrivals) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    resources = usage.report(start)
    server_cpu = usage.mark()[1] - start[1]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    first: dict[tuple[int, str], float] = {}  # (receiver, message id) -> first arrival
    for j, mid, t in run.arrivals:
        first.setdefault((j, mid), t)
    duplicates = len(run.arrivals) - len(first)
    arrived = [(mid, t) for (_, mid), t in first.items() if mid in run.sends]
    e2e = [t - run.sends[mid] for mid, t in arrived]
    total = senders * messages
    result = Result(
        throughput=total / sent_in,
        e2e_p50=statistics.median(e2e) if e2e else float("nan"),
        e2e_p99=pct(e2e, 99) if e2e else float("nan"),
        messages=total,
        deliveries=len(e2e),
        server_cpu=server_cpu,
    )
    print(f"  {usage.name}:")
    print(
        f"    sent {total} messages in {sent_in:.2f} s: {result.throughput:,.0f} msgs/s"
        f"   ({run.failed} failed)"
    )
    print(
        f"    send latency        p50 {1000 * statistics.median(run.send_latency):6.1f} ms"
        f"   p99 {1000 * pct(run.send_latency, 99):6.1f} ms"
    )
    if e2e:
        print(
            f"    end-to-end latency  p50 {1000 * result.e2e_p50:6.1f} ms"
            f"   p99 {1000 * result.e2e_p99:6.1f} ms"
        )
    delivered = (
        f"    delivered {len(e2e):,}/{expected:,} ({100 * len(e2e) / expected:.2f} %)"
        if expected
        else f"    delivered {len(e2e):,} (none waited for)"
    )
    if arrived:
        interval = max(t for _, t in arrived) - t0
        delivered += (
            f", {len(e2e) / interval:,.0f} deliveries/s over the delivery interval"
            f" ({interval:.2f} s, first send to last arrival)"
        )
    print(f"{delivered}; {duplicates} duplicates")
    print(f"    {resources}")
    if writer:
        print(f"    {writer}")
    return result


WRITER_METRICS = ("send_batches", "sends", "send_batch_seconds")


async def writer_counts(bases: list[str]) -> list[float] | None:
    """The message writers' counters (batches, sends, seconds writing) summed over the
    servers' /metrics; None when one has none (the ceiling)."""
    found = [0.0] * len(WRITER_METRICS)
    async with httpx.AsyncClient(timeout=10) as client:
        for base in bases:
            got = await client.get(f"{base}/metrics", headers=METRICS_HEADERS)
            if got.status_code != 200:
                return None
            for i, name in enumerate(WRITER_METRICS):
                value = re.search(rf"^xfchat_{name}_total ([0-9.e+]+)$", got.text, re.M)
                if value is None:
                    return None
                found[i] += float(value[1])
    return found


async def writer_line(bases: list[str], before: list[float] | None, sent_in: float) -> str:
    """What the writers did while the senders sent: batches, sends a batch, the mean
    time a batch took (statement sent to answer read), and the share of the sending
    time spent writing (one busy channel's batches are written one at a time, so near
    100 % says its writer was the cycle)."""
    after = await writer_counts(bases) if before is not None else None
    if before is None or after is None:
        return ""
    batches, sends, seconds = (a - b for a, b in zip(after, before, strict=True))
    if not batches:
        return "writer: no batch"
    processes = f" (summed over {len(bases)} processes)" if len(bases) > 1 else ""
    return (
        f"writer: {batches:,.0f} batches of {sends / batches:.1f} sends, "
        f"{1000 * seconds / batches:.2f} ms each; writing {100 * seconds / sent_in:.0f} % "
        f"of the sending time{processes}"
    )


@dataclass
class Result:
    throughput: float  # messages/s over the senders' wall time
    e2e_p50: float  # seconds, send start to arrival, over every message x receiver
    e2e_p99: float
    messages: int = 0
    deliveries: int = 0
    server_cpu: float = 0.0  # CPU seconds of the server process over the point


def compare(label: str, xfchat: Result, ceiling: Result) -> None:
    """XFChat's share of the ceiling, measured in the same run."""
    print(
        f"  => XFChat {xfchat.throughput:,.0f} msgs/s = {100 * xfchat.throughput / ceiling.throughput:.0f} %"
        f" of the ceiling's {ceiling.throughput:,.0f}; end-to-end p99 {1000 * xfchat.e2e_p99:.1f} ms"
        f" against the ceiling's {1000 * ceiling.e2e_p99:.1f} ms   [{label}]"
    )


async def paging(base: str, usage: Usage, *, messages: int) -> None:
    """One conversation with `messages` messages, read back end to end, 100 per page."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        a, b = await register(client, 2)
        conversation = await make_group(client, [a, b])
    run = Run()
    t0 = time.perf_counter()
    await bounded(
        "the paging point's senders",
        *(send_all(base, a, conversation, messages // 4, run) for _ in range(4)),
    )
    sent_in = time.perf_counter() - t0
    start = usage.mark()
    page_times: list[float] = []  # non-empty pages only
    seqs: list[int] = []  # as received
    read_in = 0.0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        url = f"/api/channels/{conversation}/messages"
        before = None
        t0 = time.perf_counter()
        for _ in range(len(run.sends) // PAGE + 2):
            params = {"limit": PAGE} | ({"before": before} if before else {})
            started = time.perf_counter()
            response = await client.get(url, params=params, headers=b.headers)
            if response.status_code != 200:
                raise SystemExit(f"paging: HTTP {response.status_code}: {response.text[:300]}")
            page = response.json()
            if not page:
                break  # the end fell on a page boundary: this empty page is not counted
            page_times.append(time.perf_counter() - started)
            read_in = time.perf_counter() - t0
            seqs += [m["seq"] for m in page]
            if len(page) < PAGE:
                break
            before = page[-1]["seq"]
        else:
            raise SystemExit(f"paging did not reach the first message in {len(page_times)} pages")
    in_order = seqs == list(range(len(run.sends), 0, -1))
    print(
        f"\none conversation, {len(run.sends)} messages (sent at "
        f"{len(run.sends) / sent_in:,.0f} msgs/s), paged newest to oldest, {PAGE} per page"
    )
    print(
        f"  {len(page_times)} pages in {read_in * 1000:.0f} ms: "
        f"p50 {1000 * statistics.median(page_times):.1f} ms, "
        f"p99 {1000 * pct(page_times, 99):.1f} ms per page; "
        f"every message once, in order: {'yes' if in_order else 'NO'}"
    )
    print(f"  {usage.report(start)}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="benchmark a running server: http://host:port")
    parser.add_argument("--senders", type=positive, help="run one point of your own")
    parser.add_argument("--messages", type=positive, help="per sender (default 100)")
    parser.add_argument("--receivers", type=positive, help="(default 10)")
    parser.add_argument("--transport", choices=sorted(RECEIVERS), default="sse")
    parser.add_argument(
        "--raw-ceiling", action="store_true", help="the ceiling without a framework (bare ASGI)"
    )
    args = parser.parse_args()
    if args.target and not re.fullmatch(r"http://[^/:]+:\d+/?", args.target):
        parser.error("--target must be http://host:port (plain HTTP, explicit port)")
    if args.senders is None and (args.messages is not None or args.receivers is not None):
        parser.error("--messages and --receivers need --senders")
    if args.senders is None:
        points = DEFAULT_POINTS
    else:
        k, m, r = args.senders, args.messages or 100, args.receivers or 10
        points = [(k, m, r, f"{k} senders x {m} msgs, {r} receivers")]

    async def run_points(targets: list[tuple[str, Usage]], pg_url: str) -> None:
        for n, (senders, messages, receivers, label) in enumerate(points):
            print(f"\n{label}  [{args.transport}]")
            results = {}
            for base, usage in targets if n % 2 == 0 else targets[::-1]:  # (alternating)
                results[usage.name] = await point(
                    base,
                    usage,
                    senders=senders,
                    messages=messages,
                    receivers=receivers,
                    transport=args.transport,
                    label=label,
                )
            if len(results) == 2:
                compare(label, results["XFChat"], results["ceiling"])
        if args.senders is None:
            base, usage = targets[0]
            if usage.server is not None:
                from bench.costs import cpu_costs  # (it uses this module's helpers)

                print(f"\nwhat a message and a delivery cost the server  [{args.transport}]")
                await cpu_costs(base, usage, args.transport)
            await paging(base, usage, messages=1200)
            from bench.server_points import server_points  # (it uses this module's helpers)

            await server_points(targets, pg_url, transport=args.transport)

    if args.target:
        await run_points(
            [(args.target.rstrip("/"), Usage(None, None))], os.environ.get("DATABASE_URL", "")
        )
        return
    async with (
        local_server() as (base, proc, pg),
        ceiling_server(args.raw_ceiling) as (top, ceiling),
    ):
        print(
            f"xfchat serve (pid {proc.pid}) on {base}, PostgreSQL {pg.binaries.major} "
            f"(durable: fsync and synchronous_commit on), {os.cpu_count()} CPUs, "
            f"load generator in this process; the in-memory ceiling (pid {ceiling.pid}) "
            f"on {top}, each point run against both, alternating which goes first"
        )
        await run_points([(base, Usage(proc, pg)), (top, Usage(ceiling, None, "ceiling"))], pg.url)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
