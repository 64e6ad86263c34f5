"""PostgreSQL stopped under load, then started again: what the clients saw.

    uv run python -m bench.outage                       # 10 s down, 2 processes, 16 senders
    uv run python -m bench.outage --down 5 --senders 8 --processes 1

Senders PUT messages (a fresh id each) into one conversation through every XFChat
process, one SSE subscriber per process follows it and reconnects with Last-Event-ID
if its stream ends. PostgreSQL is stopped (fast shutdown: open connections are cut)
for the given seconds and started again on the same port; no XFChat process is
restarted. Afterwards the rows are read: every acknowledged send must be stored
(acknowledged-but-lost = 0), in gap-free order, and every stored message must have
reached every subscriber. The same scenario, 2 s down, is a CI test
(tests/realtime/test_faults.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
import orjson

READY_EVERY_S = 0.2


@dataclass
class Outcome:
    statuses: Counter[str] = field(default_factory=Counter)  # send answers, "201", "503", ...
    ready_statuses: Counter[int] = field(default_factory=Counter)  # /ready while down
    acked: set[str] = field(default_factory=set)
    stored: dict[str, int] = field(default_factory=dict)  # id -> seq
    delivered: list[set[str]] = field(default_factory=list)  # per subscriber
    reconnects: int = 0  # subscriber streams that ended and were resumed
    recovered_s: float = float("nan")  # start of PostgreSQL -> every sender acked again
    # start of PostgreSQL -> /ready 200 on every process (its LISTEN connection is back)
    ready_again_s: float = float("nan")
    down_s: float = 0.0

    @property
    def lost(self) -> set[str]:
        """Acknowledged but not stored: must stay empty."""
        return self.acked - set(self.stored)

    @property
    def gap_free(self) -> bool:
        return sorted(self.stored.values()) == list(range(1, len(self.stored) + 1))

    @property
    def undelivered(self) -> int:
        return sum(len(set(self.stored) - got) for got in self.delivered)

    def report(self) -> str:
        sends = sum(self.statuses.values())
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"PostgreSQL down {self.down_s:.1f} s under load; {sends} sends answered ({answers})\n"
            f"  /ready while down: {dict(self.ready_statuses)}\n"
            f"  acknowledged {len(self.acked)}, stored {len(self.stored)} "
            f"(gap-free: {self.gap_free}), acknowledged-but-lost {len(self.lost)}\n"
            f"  every sender acknowledged again {self.recovered_s:.2f} s after PostgreSQL "
            f"started; {len(self.delivered)} subscribers, {self.undelivered} stored messages "
            f"missing from them, {self.reconnects} stream reconnects; /ready 200 on every "
            f"process {self.ready_again_s:.2f} s after PostgreSQL started"
        )


async def _subscribe(
    base: str, token: str, got: set[str], opened: asyncio.Event, outcome: Outcome
) -> None:
    """Follow the user's events, resuming from the last id whenever the stream ends."""
    last: str | None = None
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as client:
        while True:
            headers = {"Authorization": f"Bearer {token}"}
            if last:
                headers["Last-Event-ID"] = last
            try:
                async with client.stream("GET", f"{base}/api/events", headers=headers) as r:
                    if r.status_code != 200:
                        await asyncio.sleep(0.2)
                        continue
                    event = ""
                    async for line in r.aiter_lines():
                        if line.startswith("id: "):
                            last = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "ready":
                            opened.set()
                        elif line.startswith("data: ") and event == "message.created":
                            got.add(orjson.loads(line[6:])["id"])
            except httpx.HTTPError:
                pass
            outcome.reconnects += 1
            await asyncio.sleep(0.2)


async def _send(
    base: str,
    token: str,
    channel: str,
    outcome: Outcome,
    acked_at: list[float],
    halt: asyncio.Event,
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        i = 0
        while not halt.is_set():
            mid = str(uuid.uuid4())
            try:
                r = await client.put(
                    f"/api/channels/{channel}/messages/{mid}",
                    json={"content": f"outage {i}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = f"transport error ({type(exc).__name__})"
            outcome.statuses[status] += 1
            if status in ("200", "201"):
                outcome.acked.add(mid)
                acked_at.append(time.monotonic())
            else:
                await asyncio.sleep(0.05)
            i += 1


async def outage_under_load(
    bases: list[str],
    tokens: list[str],
    channel: str,
    *,
    database_url: str,
    stop_db: Callable[[], None],
    start_db: Callable[[], None],
    down_s: float,
    senders: int = 8,
    warm_s: float = 1.0,
    settle_s: float = 1.0,
) -> Outcome:
    """`tokens[0]` follows `channel` on every process; sender k uses tokens[k % n] on
    bases[k % len(bases)]. Bounded: about warm_s + down_s + settle_s + recovery."""
    outcome = Outcome()
    halt = asyncio.Event()
    opened = [asyncio.Event() for _ in bases]
    outcome.delivered = [set() for _ in bases]
    subs = [
        asyncio.create_task(_subscribe(b, tokens[0], got, o, outcome))
        for b, got, o in zip(bases, outcome.delivered, opened, strict=True)
    ]
    acked_at: list[list[float]] = [[] for _ in range(senders)]
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 30)
        tasks = [
            asyncio.create_task(
                _send(bases[k % len(bases)], tokens[k % len(tokens)], channel, outcome, a, halt)
            )
            for k, a in enumerate(acked_at)
        ]
        await asyncio.sleep(warm_s)
        await asyncio.to_thread(stop_db)
        down_at = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() - down_at < down_s:
                with contextlib.suppress(httpx.HTTPError):
                    outcome.ready_statuses[(await client.get(f"{bases[0]}/ready")).status_code] += 1
                await asyncio.sleep(READY_EVERY_S)
        await asyncio.to_thread(start_db)
        up_at = time.monotonic()
        outcome.down_s = up_at - down_at
        async with asyncio.timeout(60):  # every sender gets through again
            while not all(a and a[-1] > up_at for a in acked_at):
                await asyncio.sleep(0.05)
        outcome.recovered_s = max(min(t for t in a if t > up_at) for a in acked_at) - up_at
        await asyncio.sleep(settle_s)
        halt.set()
        await asyncio.gather(*tasks)
        outcome.ready_again_s = await _ready_again(bases, up_at)
        outcome.stored = await _stored(database_url, channel)
        deadline = time.monotonic() + 30
        while outcome.undelivered and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        halt.set()
        for task in [*tasks, *subs]:
            task.cancel()
        await asyncio.gather(*tasks, *subs, return_exceptions=True)
    return outcome


async def _ready_again(bases: list[str], since: float, within: float = 20) -> float:
    """Seconds from `since` until every process answers /ready with 200 (the listener
    reconnects with a backoff of up to 2 s); NaN if not within `within` s."""
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - since < within:
            with contextlib.suppress(httpx.HTTPError):
                answers = [(await client.get(f"{b}/ready")).status_code for b in bases]
                if answers == [200] * len(bases):
                    return time.monotonic() - since
            await asyncio.sleep(0.05)
    return float("nan")


async def _stored(database_url: str, channel: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, seq FROM messages WHERE channel_id = $1", uuid.UUID(channel)
        )
    finally:
        await conn.close()
    return {str(r["id"]): int(r["seq"]) for r in rows}


# --------------------------------------------------------------------- the command


async def run(down_s: float, senders: int, processes: int) -> None:
    from bench.load import make_group, register
    from bench.procs import local_servers

    async with local_servers(processes, "xfoutage-") as (servers, pg):
        bases = [s.base for s in servers]
        async with httpx.AsyncClient(base_url=bases[0], timeout=60) as client:
            users = await register(client, 4)
            channel = await make_group(client, users)
        port = pg.port
        outcome = await outage_under_load(
            bases,
            [u.token for u in users],
            channel,
            database_url=pg.url,
            stop_db=pg.stop,
            start_db=lambda: pg.start(port=port),
            down_s=down_s,
            senders=senders,
        )
        print(f"{processes} XFChat process(es), {senders} senders")
        print(outcome.report())
        alive = sum(s.proc.poll() is None for s in servers)
        print(f"  XFChat processes still running (none restarted): {alive}/{processes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=10.0, help="seconds PostgreSQL is down")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.down, max(1, args.senders), max(1, args.processes)))


if __name__ == "__main__":
    main()
