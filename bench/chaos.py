"""Chaos: no message lost or reordered through crashes, stops and access changes.

    uv run python -m bench.chaos                        # about 2.5 minutes
    uv run python -m bench.chaos --seconds 12 --seed 3

A scenario, not a benchmark. Starts a durable local PostgreSQL and `xfchat serve
--workers 2`, five users (an owner O and A-D), two groups (g1: all five; g2: all but D)
and a server with two channels (general, secret). Every user sends into the channels it
may use, a fresh id a message, retried with that id until answered 2xx, and now and
then sends an acknowledged id again (its body: 200 with its seq; another: 409); O, A
and B also edit, delete and react. Every user follows its events over two SSE and two
gateway connections that resume from their last token whenever they end; four Braid
subscriptions follow one channel each. Meanwhile, one after the other: a worker
SIGKILLed, the other SIGSTOPped for 4 s, PostgreSQL stopped for 3 s and started again on
its port, the whole server SIGKILLed and started again, a worker SIGKILLed again; and
between them C removed from g2 and added back, B kicked from the server and rejoining,
secret hidden from D and shown again. --seconds of traffic are spread over six quiet
intervals, before each fault and after the last.

Then the checks, against the database: every acknowledged send stored once, with the
seq it was answered; seq gap-free in each channel; each sender's messages in its send
order; no duplicate, out-of-order delivery or resync, and one user's receivers agree;
each receiver got exactly the channel events its user could see at their place in the
log (the access timeline read from the log); the state folded from each receiver's
events is the database's; each Braid subscription got seq 1, 2, ... in order; fresh
connections resumed from older tokens (SSE and gateway) get exactly what the receiver
got after them. Last, a round of concurrent PUTs of one id over 8 connections, which the
kernel spreads over both workers: one 201 and one row, 200 with the stored message for
its body, 409 for another.

Prints each check with its counts, then PASS or FAIL, and exits 1 unless every check
passed. Everything listens on 127.0.0.1 and is stopped by its PID at the end, also on
Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import signal
import sys
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import websockets

from bench.load import User, make_group, register
from bench.procs import XFChat, local_servers
from bench.server_points import make_server
from xfchat.db.embedded import EmbeddedPostgres
from xfchat.realtime.cursor import TokenCodec

ENV = {
    "XFCHAT_WORKERS": "2",
    "XFCHAT_RATE_REALTIME_USER": "100000/60",  # (every receiver reconnects after a fault)
    "XFCHAT_DB_POOL_MAX": "10",
    "XFCHAT_ACCESS_TOKEN_TTL": "3600",  # (the longest run, --seconds 600, takes 15 min)
    "XFCHAT_SHUTDOWN_GRACE": "1",
}
EMOJI = ["👍", "🔥", "x", "ok"]
STOP_S = 4  # a worker SIGSTOPped
DOWN_S = 3  # PostgreSQL stopped
TRIES = 60  # a send's or an access change's, 0.1-3 s apart
MAX_SENDS = 5000  # each sender's
SETTLE_S = 60  # for every receiver to get the last message
RESUME_S = 20  # for a resumed connection to catch up
BOUND_S = 420  # the run's, beyond --seconds (a default run takes about 150 s)
SHOWN = 5  # problems printed per check

Place = tuple[int, int]  # an event's (g, pos) in the log
Event = tuple[Place, str, dict[str, Any]]
Result = tuple[str, str, list[str]]  # a check: its name, its counts, its problems


# ------------------------------------------------------------------------ senders


@dataclass
class Traffic:
    can_send: dict[str, set[str]]  # user id -> the channels it may send to now
    # (user id, channel) -> [(message id, seq)] in send order
    acked: defaultdict[tuple[str, str], list[tuple[str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    answers: Counter[int] = field(default_factory=Counter)  # status (0: no answer) -> count
    retries: int = 0
    retried_ok: int = 0  # retries answered 200: an earlier try was stored, its answer lost
    repeats: int = 0  # acknowledged ids sent again
    changes: Counter[str] = field(default_factory=Counter)  # edits, deletes, reactions
    problems: list[str] = field(default_factory=list)


async def put(
    client: httpx.AsyncClient, user: User, channel: str, mid: str, content: str
) -> tuple[int, Any]:
    try:
        r = await client.put(
            f"/api/channels/{channel}/messages/{mid}",
            json={"content": content},
            headers=user.headers,
        )
    except httpx.HTTPError:
        return 0, None
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, None


async def send(
    client: httpx.AsyncClient, user: User, channel: str, content: str, traffic: Traffic
) -> tuple[str, int] | None:
    """PUT a message with a fresh id, again with that id until answered: its id and seq,
    or None if the user lost access to the channel."""
    mid = str(uuid.uuid4())
    for attempt in range(TRIES):
        status, body = await put(client, user, channel, mid, content)
        traffic.answers[status] += 1
        traffic.retries += attempt > 0
        if status in (200, 201):
            traffic.retried_ok += attempt > 0 and status == 200
            traffic.acked[(user.id, channel)].append((mid, body["seq"]))
            return mid, body["seq"]
        if status in (403, 404, 409):
            if status == 409 or channel in traffic.can_send[user.id]:
                traffic.problems.append(f"{status} for {mid} of {user.username}: {body}")
            return None
        await asyncio.sleep(0.1 + 0.05 * attempt)
    traffic.problems.append(f"{mid} of {user.username} never answered 2xx")
    return None


async def repeat(
    client: httpx.AsyncClient,
    user: User,
    channel: str,
    sent: tuple[str, int],
    content: str,
    traffic: Traffic,
) -> None:
    """An acknowledged id again: its body is 200 with its seq, another body 409 (or 200
    once the message was edited or deleted: then it is taken as a retry)."""
    mid, seq = sent
    traffic.repeats += 1
    status, body = await put(client, user, channel, mid, content)
    if status == 201 or (status == 200 and body["seq"] != seq):
        traffic.problems.append(f"{mid} again: {status} {body}")
    status, body = await put(client, user, channel, mid, content + " (changed)")
    changed = status == 200 and (body.get("edited_at") or body.get("deleted"))
    lost = status in (403, 404) and channel not in traffic.can_send[user.id]
    if (
        status == 201
        or (status == 200 and not changed)
        or (400 <= status < 500 and status != 409 and not lost)
    ):
        traffic.problems.append(f"{mid} again with another body: {status} {body}")


async def sender(
    base: str, user: User, traffic: Traffic, halt: asyncio.Event, rng: random.Random
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        for i in range(MAX_SENDS):
            if halt.is_set():
                return
            channel = rng.choice(sorted(traffic.can_send[user.id]))  # (g1 is never left)
            content = f"{user.username} #{i}"
            sent = await send(client, user, channel, content, traffic)
            if sent and rng.random() < 0.08:
                await repeat(client, user, channel, sent, content, traffic)
            await asyncio.sleep(rng.uniform(0, 0.05))


async def changer(
    base: str, user: User, traffic: Traffic, halt: asyncio.Event, rng: random.Random
) -> None:
    """Edits, deletes, reactions added and removed on the user's recent messages."""
    async with httpx.AsyncClient(base_url=base, timeout=15, headers=user.headers) as client:
        while not halt.is_set():
            await asyncio.sleep(rng.uniform(0.02, 0.15))
            mine = [
                (channel, mid)
                for (uid, channel), sent in traffic.acked.items()
                if uid == user.id
                for mid, _ in sent[-20:]
            ]
            if not mine:
                continue
            channel, mid = rng.choice(mine)
            url = f"/api/channels/{channel}/messages/{mid}"
            reaction = f"{url}/reactions/{rng.choice(EMOJI)}/@me"
            roll = rng.random()
            with contextlib.suppress(httpx.HTTPError):
                if roll < 0.4:
                    r = await client.patch(url, json={"content": f"edit {rng.random():.6f}"})
                    traffic.changes["edits"] += r.status_code == 200
                elif roll < 0.5:
                    r = await client.delete(url)
                    traffic.changes["deletes"] += r.status_code == 204
                elif roll < 0.8:
                    r = await client.put(reaction)
                    traffic.changes["reactions added"] += r.status_code == 204
                else:
                    r = await client.delete(reaction)
                    traffic.changes["reactions removed"] += r.status_code == 204


# ---------------------------------------------------------------------- receivers


@dataclass
class Receiver:
    """What one receiver saw, across its reconnects."""

    name: str
    user: User
    tag: bytes  # the user's, in its resume tokens
    transport: str  # "SSE" or "gateway"
    last: str | None = None  # the token to resume from
    events: list[Event] = field(default_factory=list)
    tokens: list[tuple[str, int]] = field(default_factory=list)  # (token, events up to it)
    ready: list[Place] = field(default_factory=list)
    resyncs: list[Any] = field(default_factory=list)
    reconnects: int = 0

    def take(self, kind: str, token: str | None, data: Any) -> None:
        if kind == "resync":
            self.resyncs.append(data)
        elif token and kind == "ready":
            self.ready.append(self.place(token))
            self.last = token
        elif token and kind and kind != "closed":
            self.events.append((self.place(token), kind, data))
            self.tokens.append((token, len(self.events)))
            self.last = token

    def place(self, token: str) -> Place:
        p = TokenCodec.decode(token, self.tag)
        return p.g, p.pos

    def has_message(self, mid: str) -> bool:
        return any(kind == "message.created" and d["id"] == mid for _, kind, d in self.events)


async def sse_receiver(base: str, r: Receiver) -> None:
    """/api/events, resumed from the last token (Last-Event-ID) whenever it ends."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=30)) as client:
        while True:
            headers = r.user.headers | ({"Last-Event-ID": r.last} if r.last else {})
            with contextlib.suppress(httpx.HTTPError, OSError):
                async with client.stream("GET", f"{base}/api/events", headers=headers) as s:
                    kind, token, data = "", None, None
                    async for line in s.aiter_lines():
                        if line.startswith("id: "):
                            token = line[4:]
                        elif line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            data = orjson.loads(line[6:])
                        elif not line:
                            r.take(kind, token, data)
                            kind, token, data = "", None, None
            r.reconnects += 1
            await asyncio.sleep(random.uniform(0.05, 0.4))


async def gateway_receiver(base: str, r: Receiver) -> None:
    """/api/gateway, resumed from the last token (op 6) whenever it ends."""
    url = base.replace("http://", "ws://") + "/api/gateway"
    while True:
        with contextlib.suppress(websockets.WebSocketException, OSError, TimeoutError):
            async with websockets.connect(url, max_size=None, open_timeout=5) as ws:
                hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                auth = {"token": r.user.token}
                start = {"op": 6, "d": auth | {"seq": r.last}} if r.last else {"op": 2, "d": auth}
                await ws.send(orjson.dumps(start).decode())
                beat = asyncio.create_task(heartbeat(ws, hello["d"]["heartbeat_interval"] / 2000))
                try:
                    async for raw in ws:
                        frame = orjson.loads(raw)
                        if frame["op"] == 9:  # invalid session: start afresh
                            r.resyncs.append(frame)
                            r.last = None
                        elif frame["op"] == 0:
                            r.take(frame["t"], frame.get("s"), frame["d"])
                finally:
                    beat.cancel()
        r.reconnects += 1
        await asyncio.sleep(random.uniform(0.05, 0.4))


def follow(base: str, r: Receiver) -> asyncio.Task[None]:
    receive = sse_receiver if r.transport == "SSE" else gateway_receiver
    return asyncio.create_task(receive(base, r))


async def heartbeat(ws: websockets.ClientConnection, every_s: float) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await asyncio.sleep(every_s)
            await ws.send('{"op": 1}')


@dataclass
class Braid:
    """A Braid subscription to one channel's messages, resumed from the last it got."""

    user: User
    channel: str
    name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0


async def braid_receiver(base: str, b: Braid) -> None:
    """Until the subscription is refused (the user lost the channel) or cancelled."""
    last: str | None = None
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=30)) as client:
        while True:
            headers = b.user.headers | {"Subscribe": "true", "Heartbeats": "5s"}
            if last:
                headers["Parents"] = orjson.dumps(last).decode()
            url = f"{base}/api/channels/{b.channel}/messages"
            with contextlib.suppress(httpx.HTTPError, OSError):
                async with client.stream("GET", url, headers=headers) as s:
                    if s.status_code in (403, 404):
                        return
                    buf = b""
                    async for chunk in s.aiter_bytes():
                        buf += chunk
                        while update := _braid_update(buf):  # the snapshot, then patches
                            got, buf = update
                            b.messages += got
                            last = got[-1]["id"] if got else last
            b.reconnects += 1
            await asyncio.sleep(random.uniform(0.05, 0.4))


def _braid_update(buf: bytes) -> tuple[list[dict[str, Any]], bytes] | None:
    """The messages of the first whole update in `buf` (a status line, headers, a blank
    line, a body) and what follows it; None if there is none yet."""
    buf = buf.lstrip(b"\r\n")
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode().split("\r\n")[1:]
    head = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    stop = end + 4 + int(head["content-length"])
    if len(buf) < stop:
        return None
    body = orjson.loads(buf[end + 4 : stop])
    return ([body] if "content-range" in head else body), buf[stop:]


# --------------------------------------------------------- faults and access changes


def workers(server: XFChat) -> list[psutil.Process]:
    """The server's live worker processes, by PID."""
    with contextlib.suppress(psutil.NoSuchProcess):
        kids = server.proc.children()
        return sorted((k for k in kids if k.status() != psutil.STATUS_ZOMBIE), key=lambda k: k.pid)
    return []


def stop_all(server: XFChat) -> None:
    """Stop the server, a SIGSTOPped worker too; kill any worker left."""
    left = workers(server)
    for w in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            w.resume()
    server.stop()
    for w in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            w.kill()


async def unhurried(call: Callable[[], object]) -> None:
    """`call` in a thread, finished even if the caller is cancelled (PostgreSQL is not
    started while it is being stopped at the end)."""
    job = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        await job
        raise


class Faults:
    """The fault sequence, its log and its counts."""

    def __init__(self, server: XFChat, pg: EmbeddedPostgres, traffic: Traffic) -> None:
        self.server, self.pg, self.traffic = server, pg, traffic
        self.started = time.monotonic()
        self.injected: list[str] = []
        self.recoveries: list[float] = []
        self.changes = 0
        self.problems: list[str] = []

    def say(self, what: str) -> None:
        print(f"  {time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def inject(self, what: str) -> None:
        self.injected.append(what)
        self.say(what)

    async def recovered(self) -> None:
        """Until the server answers /ready and both workers run again."""
        since = time.monotonic()
        await self.server.ready()
        async with asyncio.timeout(30):
            while len(workers(self.server)) < 2:
                await asyncio.sleep(0.1)
        self.recoveries.append(time.monotonic() - since)
        self.say(f"ready again after {self.recoveries[-1]:.1f} s")

    async def change(
        self,
        what: str,
        actor: User,
        method: str,
        url: str,
        grant: bool,
        subject: User,
        channels: set[str],
        **kw: Any,
    ) -> None:
        """One access change, tried until it is answered 2xx (the server or PostgreSQL
        may be down): `subject` may send to `channels` again once it is made, and no
        longer from before it is asked."""
        can_send = self.traffic.can_send[subject.id]
        if not grant:
            can_send -= channels
        async with httpx.AsyncClient(base_url=self.server.base, timeout=30) as client:
            for _ in range(TRIES):
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.request(method, url, headers=actor.headers, **kw)
                    if r.is_success:
                        self.changes += 1
                        self.say(f"{what}: {r.status_code}")
                        if grant:
                            can_send |= channels
                        return
                await asyncio.sleep(0.3)
        self.problems.append(f"{what}: never answered 2xx")

    async def run(self, step: float, users: list[User], ch: dict[str, str], invite: str) -> None:
        owner, b, c, d = users[0], *users[2:]
        g2, both = ch["g2"], {ch["general"], ch["secret"]}
        member = f"/api/conversations/{g2}/participants/{c.id}"
        hide = f"/api/channels/{ch['secret']}/overrides/member/{d.id}"
        await asyncio.sleep(step)
        w = workers(self.server)[0]
        self.inject(f"SIGKILL worker {w.pid}")
        w.kill()
        await asyncio.sleep(0.5)
        await self.change("C removed from g2", owner, "DELETE", member, False, c, {g2})
        await self.recovered()
        await asyncio.sleep(step)
        w = workers(self.server)[1]
        self.inject(f"SIGSTOP worker {w.pid} for {STOP_S} s")
        w.suspend()
        try:
            kick = f"/api/servers/{ch['server']}/members/{b.id}"
            await self.change("B kicked from the server", owner, "DELETE", kick, False, b, both)
            await asyncio.sleep(STOP_S)
        finally:
            w.resume()
            self.say(f"SIGCONT worker {w.pid}")
        await asyncio.sleep(step)
        self.inject(f"PostgreSQL stopped for {DOWN_S} s")
        port = self.pg.port
        await unhurried(self.pg.stop)
        await asyncio.sleep(DOWN_S)
        await unhurried(lambda: self.pg.start(port=port))
        await self.recovered()
        deny = {"allow": "0", "deny": "1"}  # (VIEW_CHANNEL)
        await self.change(
            "secret hidden from D", owner, "PUT", hide, False, d, {ch["secret"]}, json=deny
        )
        await self.change("C added to g2 again", owner, "PUT", member, True, c, {g2})
        await asyncio.sleep(step)
        self.inject("SIGKILL the whole server (supervisor and workers), start it again")
        procs = [self.server.proc, *workers(self.server)]
        for p in procs:
            p.kill()
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.wait(10)
        await asyncio.sleep(1)
        self.server.start()
        await self.recovered()
        await asyncio.sleep(step)
        w = workers(self.server)[1]
        self.inject(f"SIGKILL worker {w.pid}")
        w.kill()
        await self.change(
            "B rejoins the server", b, "POST", f"/api/invites/{invite}", True, b, both
        )
        await self.change("secret shown to D again", owner, "DELETE", hide, True, d, {ch["secret"]})
        await self.recovered()
        await asyncio.sleep(step)

    def result(self) -> Result:
        recoveries = ", ".join(f"{s:.1f}" for s in self.recoveries)
        return (
            "faults and access changes",
            f"{len(self.injected)} faults injected, {self.changes} access changes made; ready "
            f"again after {recoveries} s",
            self.problems,
        )


# ------------------------------------------------------------------------- checks

ACCESS = {"conversation.created", "conversation.added", "conversation.removed"}
ACCESS |= {"server.joined", "server.left", "channel.hidden", "channel.revealed"}


@dataclass
class Stored:
    """The database after the traffic."""

    messages: dict[str, asyncpg.Record]  # id -> id, channel, seq, kind, content, deleted
    reactions: dict[str, dict[str, set[str]]]  # message id -> emoji -> user ids
    # place -> channel, for the events of the scenario's channels
    channel_events: dict[Place, str]
    # (user, channel) -> [(place, may see from there on)], from the users' access events
    access: defaultdict[tuple[str, str], list[tuple[Place, bool]]]

    @classmethod
    async def read(cls, conn: asyncpg.Connection, channels: set[str], users: set[str]) -> Stored:
        messages = await conn.fetch(
            "SELECT id::text, channel_id::text AS channel, seq, kind, content,"
            " deleted_at IS NOT NULL AS deleted FROM messages"
        )
        reactions: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for r in await conn.fetch("SELECT message_id::text, emoji, user_id::text FROM reactions"):
            reactions[r["message_id"]][r["emoji"]].add(r["user_id"])
        log = await conn.fetch(
            "SELECT c.g, e.pos, s.kind, s.entity_id::text AS entity, e.type, e.data"
            " FROM events e JOIN event_streams s ON s.id = e.stream_id"
            " JOIN event_commits c ON c.stream_id = e.stream_id"
            " AND e.pos BETWEEN c.first_pos AND c.last_pos ORDER BY c.g, e.pos"
        )
        access: defaultdict[tuple[str, str], list[tuple[Place, bool]]] = defaultdict(list)
        for r in log:
            if r["kind"] != "user" or r["entity"] not in users or r["type"] not in ACCESS:
                continue
            kind, d = r["type"], orjson.loads(r["data"])
            if kind.startswith("conversation."):
                changed, grant = [d["id"]], kind != "conversation.removed"
            elif kind == "server.joined":
                changed, grant = [c["id"] for c in d["channels"]], True
            else:
                changed, grant = d["channel_ids"], kind == "channel.revealed"
            for channel in changed:
                access[(r["entity"], channel)].append(((r["g"], r["pos"]), grant))
        return cls(
            {m["id"]: m for m in messages},
            reactions,
            {
                (r["g"], r["pos"]): r["entity"]
                for r in log
                if r["kind"] == "channel" and r["entity"] in channels
            },
            access,
        )

    def visible(self, user: str, channel: str, at: Place) -> bool:
        seen = False
        for place, grant in self.access.get((user, channel), []):
            if place < at:
                seen = grant
        return seen


def storage(db: Stored, traffic: Traffic, names: dict[str, str]) -> list[Result]:
    once: list[str] = list(traffic.problems)
    order: list[str] = []
    for (user, channel), sent in traffic.acked.items():
        last = 0
        for mid, seq in sent:
            m = db.messages.get(mid)
            if m is None or (m["channel"], m["seq"]) != (channel, seq):
                once.append(f"{mid} acknowledged as seq {seq} of {names[channel]}, stored: {m}")
            elif seq <= last:
                order.append(f"{mid} of {user} in {names[channel]}: seq {seq} after {last}")
            last = seq
    acked = {mid for sent in traffic.acked.values() for mid, _ in sent}
    stored = [m for m in db.messages.values() if m["kind"] == "default"]
    seqs: defaultdict[str, list[int]] = defaultdict(list)
    for m in db.messages.values():
        seqs[m["channel"]].append(m["seq"])
    gaps = [names[c] for c, s in seqs.items() if sorted(s) != list(range(1, len(s) + 1))]
    answers = ", ".join(f"{n:,} x {s or 'no answer'}" for s, n in sorted(traffic.answers.items()))
    return [
        (
            "exactly-once storage",
            f"{len(acked):,} acknowledged sends, {len(stored):,} stored "
            f"({len({m['id'] for m in stored} - acked)} stored but not acknowledged); "
            f"answers: {answers}; {traffic.retries:,} retries ({traffic.retried_ok} answered "
            f"200: stored before, the answer lost); {traffic.repeats:,} acknowledged ids sent "
            f"again",
            once,
        ),
        (
            "gap-free seq per channel",
            ", ".join(
                f"{names[c]} 1-{len(s):,}"
                for c, s in sorted(seqs.items(), key=lambda i: names[i[0]])
            ),
            [f"{name}: seq not 1..n" for name in gaps],
        ),
        (
            "per-sender order",
            f"{len(traffic.acked)} (sender, channel) sequences, each stored in its send order",
            order,
        ),
    ]


def fold(events: list[Event]) -> dict[str, tuple[str, str, bool, dict[str, set[str]]]]:
    """Message id -> (channel, content, deleted, reactions) as a client would hold them."""
    state: dict[str, tuple[str, str, bool, dict[str, set[str]]]] = {}
    for _, kind, d in events:
        if kind in ("message.created", "message.updated"):
            old = state.get(d["id"])
            state[d["id"]] = (
                d["channel_id"],
                d["content"],
                d["deleted"],
                old[3] if old else defaultdict(set),
            )
        elif kind == "message.deleted" and d["id"] in state:
            state[d["id"]] = (state[d["id"]][0], "", True, defaultdict(set))
        elif kind in ("reaction.added", "reaction.removed") and d["message_id"] in state:
            users = state[d["message_id"]][3][d["emoji"]]
            (users.add if kind == "reaction.added" else users.discard)(d["user_id"])
    return state


def delivery(
    db: Stored, receivers: list[Receiver], names: dict[str, str], last: str, changes: Counter[str]
) -> list[Result]:
    order = [
        f"{r.name}: not the last message in {SETTLE_S} s"
        for r in receivers
        if not r.has_message(last)
    ]
    seen: list[str] = []
    final: list[str] = []
    compared = 0
    lost_some = {key for key, timeline in db.access.items() if not all(g for _, g in timeline)}
    for r in receivers:
        places = [e[0] for e in r.events]
        bad = [(a, b) for a, b in itertools.pairwise(places) if b <= a]
        created = [d for _, kind, d in r.events if kind == "message.created"]
        twice = len(created) - len({d["id"] for d in created})
        by_channel: defaultdict[str, list[int]] = defaultdict(list)
        for d in created:
            by_channel[d["channel_id"]].append(d["seq"])
        unsorted = [names.get(c, c) for c, s in by_channel.items() if s != sorted(s)]
        if bad or twice or unsorted or r.resyncs:
            order.append(
                f"{r.name}: places not increasing {bad[:3]}, {twice} messages twice, seq "
                f"out of order in {unsorted}, resyncs {r.resyncs[:2]}"
            )
        if r.events:  # exactly the channel events visible to the user, within its span
            start, end = min(r.events[0][0], *r.ready[:1]), r.events[-1][0]
            want = {
                p
                for p, c in db.channel_events.items()
                if start < p <= end and db.visible(r.user.id, c, p)
            }
            got = {p for p in places if start < p <= end and p in db.channel_events}
            if got != want:
                seen.append(
                    f"{r.name}: {len(got - want)} delivered but not visible "
                    f"{sorted(got - want)[:4]}, {len(want - got)} visible but missing "
                    f"{sorted(want - got)[:4]}"
                )
        for mid, (channel, content, deleted, reactions) in fold(r.events).items():
            m = db.messages.get(mid)
            if m is None or (r.user.id, channel) in lost_some:
                continue  # (access lost and regained: a client fetches such a channel again)
            compared += 1
            held = {e: u for e, u in reactions.items() if u}
            stored = (m["content"], m["deleted"], db.reactions.get(mid, {}))
            if (content, deleted, held) != stored:
                final.append(
                    f"{r.name}: {mid} in {names[channel]} holds {content!r} {deleted} {held}, stored {stored}"
                )
    by_user: defaultdict[str, list[Receiver]] = defaultdict(list)
    for r in receivers:
        by_user[r.user.id].append(r)
    for group in by_user.values():  # one user's receivers agree where they overlap
        ref = max(group, key=lambda r: len(r.events))
        for r in group:
            if r.events and ref.events:
                lo, hi = (
                    max(r.events[0][0], ref.events[0][0]),
                    min(r.events[-1][0], ref.events[-1][0]),
                )
                mine = [e[0] for e in r.events if lo <= e[0] <= hi]
                theirs = [e[0] for e in ref.events if lo <= e[0] <= hi]
                if mine != theirs:
                    order.append(
                        f"{r.name} and {ref.name} differ: {sorted(set(mine) ^ set(theirs))[:4]}"
                    )
    events = sum(len(r.events) for r in receivers)
    return [
        (
            "ordered delivery, no duplicate",
            f"{len(receivers)} receivers (half SSE, half gateway), {events:,} events, "
            f"{sum(r.reconnects for r in receivers)} reconnects, "
            f"{sum(len(r.resyncs) for r in receivers)} resyncs",
            order,
        ),
        (
            "visibility against the access timeline",
            f"{len(db.channel_events):,} channel events; {sum(map(len, db.access.values()))} "
            f"access events of {len(db.access)} (user, channel) pairs, {len(lost_some)} of "
            f"them lost and given back",
            seen,
        ),
        (
            "final state equals the database",
            f"{compared:,} (receiver, message) states after "
            + ", ".join(f"{n} {what}" for what, n in sorted(changes.items()))
            + ": content, deleted, reactions",
            final,
        ),
    ]


def braid(db: Stored, braids: list[Braid], complete: Braid) -> Result:
    problems = []
    for b in braids:
        seqs = [m["seq"] for m in b.messages]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{b.name}: seq not 1..n in order (n={len(seqs)}): {seqs[:10]}")
    want = sum(m["channel"] == complete.channel for m in db.messages.values())
    if len(complete.messages) != want:
        problems.append(f"{complete.name}: {len(complete.messages)} of {want} messages")
    return (
        "Braid subscriptions in order",
        f"{len(braids)} subscriptions, {sum(len(b.messages) for b in braids):,} messages, "
        f"{sum(b.reconnects for b in braids)} reconnects; {complete.name}: "
        f"{len(complete.messages)} of {want}",
        problems,
    )


async def resumes(base: str, receivers: list[Receiver], rng: random.Random) -> Result:
    """Fresh connections from some of each receiver's tokens, its first among them:
    exactly the events it got after each."""
    problems: list[str] = []
    count = 0

    async def resume(r: Receiver, token: str, index: int, transport: str) -> None:
        fresh = Receiver(f"{r.name} resumed over {transport}", r.user, r.tag, transport, token)
        task = follow(base, fresh)
        expect = [e[0] for e in r.events[index:]]
        end = r.events[-1][0]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RESUME_S if expect else 1):
                while not (fresh.events and fresh.events[-1][0] >= end):
                    await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        got = [e[0] for e in fresh.events if e[0] <= end]
        if got != expect or fresh.resyncs:
            problems.append(
                f"{fresh.name} from {r.place(token)}: {len(got)} events, {len(expect)} expected; "
                f"only resumed {sorted(set(got) - set(expect))[:4]}, only first "
                f"{sorted(set(expect) - set(got))[:4]}, resyncs {fresh.resyncs[:1]}"
            )

    for r in receivers:
        if r.tokens:
            picks = [*rng.sample(r.tokens, min(4, len(r.tokens))), r.tokens[0]]
            tries = [(t, i, transport) for t, i in picks for transport in ("SSE", "gateway")]
            count += len(tries)
            await asyncio.gather(*(resume(r, *t) for t in tries))
    return (
        "resume from old tokens",
        f"{count} fresh connections (half SSE, half gateway) resumed from older tokens",
        problems,
    )


async def idempotency(
    base: str, conn: asyncpg.Connection, users: list[User], rounds: int = 40, clients: int = 8
) -> Result:
    """Each round, `clients` PUTs of one new id at once, each over its own connection:
    in odd rounds all with one body, in even ones half with one body and half with
    bodies of their own."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        channel = await make_group(client, users)
    answers: Counter[int] = Counter()
    problems: list[str] = []

    async def one(mid: str, body: str) -> tuple[int, Any]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return await put(client, users[0], channel, mid, body)

    for n in range(rounds):
        mid = str(uuid.uuid4())
        bodies = ["same" if k % 2 == 0 or n % 2 else f"other {k}" for k in range(clients)]
        got = await asyncio.gather(*(one(mid, body) for body in bodies))
        answers.update(status for status, _ in got)
        rows = await conn.fetch("SELECT seq, content FROM messages WHERE id = $1", uuid.UUID(mid))
        created = [status for status, _ in got if status == 201]
        if len(created) != 1 or len(rows) != 1:
            problems.append(f"round {n}: {len(created)} x 201, {len(rows)} rows")
            continue
        for body, (status, answer) in zip(bodies, got, strict=True):
            same = body == rows[0]["content"]
            if status not in (200, 201, 409) or (status == 409) == same:
                problems.append(f"round {n}: {status} for {body!r}, stored {rows[0]['content']!r}")
            elif status == 200 and answer["seq"] != rows[0]["seq"]:
                problems.append(f"round {n}: 200 with seq {answer['seq']}, stored {rows[0]['seq']}")
    return (
        "idempotent retries at both workers",
        f"{rounds} rounds x {clients} concurrent PUTs of one id: "
        + ", ".join(f"{n:,} x {s}" for s, n in sorted(answers.items())),
        problems,
    )


# ---------------------------------------------------------------------- the command


async def chaos(seconds: float, seed: int) -> list[Result]:
    loop, run = asyncio.get_running_loop(), asyncio.current_task()
    assert run is not None

    def interrupted() -> None:  # (uv passes a terminal's Ctrl-C on: this gets it twice)
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        run.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupted)  # everything is stopped then
    async with local_servers(1, "xfchaos-", **ENV) as (servers, pg):
        try:
            async with asyncio.timeout(seconds + BOUND_S):
                return await scenario(servers[0], pg, seconds / 6, random.Random(seed))
        finally:
            stop_all(servers[0])


async def scenario(
    server: XFChat, pg: EmbeddedPostgres, step: float, rng: random.Random
) -> list[Result]:
    base = server.base
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        users = await register(client, 5)
        owner, a, b, c, d = users
        made = await make_server(client, owner, users[1:])
        secret = await client.post(
            f"/api/servers/{made['id']}/channels", headers=owner.headers, json={"name": "secret"}
        )
        invite = await client.post(
            f"/api/servers/{made['id']}/invites",
            headers=owner.headers,
            json={"max_uses": None, "max_age_s": None},
        )
        ch = {
            "g1": await make_group(client, users),
            "g2": await make_group(client, users[:4]),
            "general": made["channels"][0]["id"],
            "secret": secret.json()["id"],
            "server": made["id"],
        }
    names = {ch[n]: n for n in ("g1", "g2", "general", "secret")}
    traffic = Traffic({u.id: set(names) - ({ch["g2"]} if u is d else set()) for u in users})
    codec = TokenCodec(server.env["XFCHAT_SECRET"])
    receivers = [
        Receiver(f"{name}'s {transport} {k}", u, codec.tag(uuid.UUID(u.id)), transport)
        for u, name in zip(users, "OABCD", strict=True)
        for k in (1, 2)
        for transport in ("SSE", "gateway")
    ]
    braids = [
        Braid(a, ch["g1"], "braid-A-g1"),
        Braid(b, ch["general"], "braid-B-general"),
        Braid(c, ch["g2"], "braid-C-g2"),
        Braid(d, ch["secret"], "braid-D-secret"),
    ]
    listening = [follow(base, r) for r in receivers]
    listening += [asyncio.create_task(braid_receiver(base, br)) for br in braids]
    halt = asyncio.Event()
    traffic_tasks: list[asyncio.Task[None]] = []
    faults = Faults(server, pg, traffic)
    try:
        await asyncio.sleep(2)  # (every receiver and subscription open before the first send)
        traffic_tasks = [
            asyncio.create_task(work(base, u, traffic, halt, random.Random(rng.random())))
            for work, among in ((sender, users), (changer, [owner, a, b]))
            for u in among
        ]
        print(
            f"traffic: {len(users)} senders, 3 of them also editing, deleting and reacting; "
            f"{len(receivers)} receivers, {len(braids)} Braid subscriptions"
        )
        try:
            await faults.run(step, users, ch, invite.json()["code"])
        finally:
            halt.set()
        await asyncio.gather(*traffic_tasks)
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            last = await send(client, owner, ch["g1"], "the last message", traffic)
        if last is None:
            raise RuntimeError("the last message was refused")
        with contextlib.suppress(TimeoutError):  # (a receiver that never gets it fails below)
            async with asyncio.timeout(SETTLE_S):
                while not all(r.has_message(last[0]) for r in receivers):
                    await asyncio.sleep(0.2)
        faults.say("traffic stopped; every receiver has the last message")
    finally:
        for task in [*traffic_tasks, *listening]:
            task.cancel()
        await asyncio.gather(*traffic_tasks, *listening, return_exceptions=True)
    conn = await asyncpg.connect(pg.url)
    try:
        db = await Stored.read(conn, set(names), {u.id for u in users})
        return [
            faults.result(),
            *storage(db, traffic, names),
            *delivery(db, receivers, names, last[0], traffic.changes),
            braid(db, braids, braids[0]),
            await resumes(base, receivers, rng),
            await idempotency(base, conn, [owner, a]),
        ]
    finally:
        await conn.close()


def report(results: list[Result], started: float) -> bool:
    for name, counts, problems in results:
        print(f"{'ok  ' if not problems else 'FAIL'} {name}: {counts}")
        for problem in problems[:SHOWN]:
            print(f"       - {problem}")
        if len(problems) > SHOWN:
            print(f"       ... and {len(problems) - SHOWN} more")
    failed = [name for name, _, problems in results if problems]
    took = f"({time.monotonic() - started:.0f} s)"
    print(f"FAIL: {', '.join(failed)} {took}" if failed else f"PASS: {len(results)} checks {took}")
    return not failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=36, help="of traffic between the faults (%(default)s)"
    )
    parser.add_argument("--seed", type=int, default=7, help="of the senders' choices (%(default)s)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 6), 600)
    print(
        f"bench.chaos: xfchat serve --workers 2, seed {args.seed}, {seconds:g} s of traffic "
        f"between faults",
        flush=True,
    )
    started = time.monotonic()
    try:
        passed = report(asyncio.run(chaos(seconds, args.seed)), started)
    except asyncio.CancelledError:
        print("FAIL: interrupted")
        sys.exit(1)
    except (Exception, SystemExit):
        traceback.print_exc()
        print("FAIL: the run stopped early")
        sys.exit(1)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
