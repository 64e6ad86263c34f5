"""Fan-out: one LISTEN connection per process -> per-subscriber bounded inboxes.

The durable event log is the truth; notifications are fast hints that usually carry
the events themselves. A subscriber keeps, per stream it follows, the last position it
handed on. An event at exactly the next position goes straight through; an older one
is a duplicate and is dropped; a newer one means something was missed (a notification
without its events, a listener reconnect, a resume) and the gap is read from the log
first. So delivery is in order, gap-free and duplicate-free per stream, whatever the
notifications do.

The hub never waits for a subscriber: offering is a non-blocking append, and a
subscriber whose inbox is full is closed ("slow_consumer") so that its client resumes
from its last position instead of slowing everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.queries import events as events_q
from xfchat.db.queries.locks import select_one
from xfchat.realtime.cursor import encode
from xfchat.realtime.events import EPHEMERAL_CHANNEL, NOTIFY_CHANNEL, Stream, StreamKind
from xfchat.tasks import stop

log = logging.getLogger("xfchat.hub")
T = TypeVar("T")

CATCH_UP_PAGE = 500
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
LISTENER_PING_S = 2.0  # a silently dead listener is noticed within 4 s


class Delivery:
    """One event (or an ephemeral signal, with pos None) on its way to subscribers.
    Shared by all of them: its JSON is encoded once."""

    __slots__ = ("_json", "data", "pos", "stream", "stream_id", "type")

    def __init__(
        self, stream: Stream, stream_id: int, pos: int | None, type: str, data: Any
    ) -> None:
        self.stream = stream
        self.stream_id = stream_id
        self.pos = pos
        self.type = type
        self.data = data
        self._json: bytes | None = None

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.data)
        return self._json


class Closed(Exception):
    """The subscription ended; `reason` tells the transport what to tell its client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Hint:
    """Stream `stream` reached `pos`, events not included: read them from the log."""

    stream: Stream
    pos: int


@dataclass(frozen=True)
class _CatchUp:
    stream: Stream | None  # None: every stream


@dataclass(frozen=True)
class _Follow:
    stream: Stream
    from_pos: int | None


Item = Delivery | _Hint | _CatchUp | _Follow
Reactor = Callable[["Subscriber", Delivery], None]


class Subscriber:
    """What one connection receives. `next()` yields (delivery, resume token after it)."""

    def __init__(
        self, hub: Hub, user_id: UUID, session_id: UUID | None, limit: int, reactor: Reactor | None
    ) -> None:
        self.hub = hub
        self.user_id = user_id
        self.session_id = session_id
        self.limit = limit
        self.reactor = reactor
        self.cursors: dict[Stream, int] = {}
        self.ids: dict[Stream, int] = {}
        # Streams resumed without a position of their own: a join event replayed from
        # the user's stream may move them back to where the user joined.
        self.tokenless: set[Stream] = set()
        self.registered: set[Stream] = set()  # streams in the hub's index, to undo on close
        # Rejoins heard (on the user's stream) before the removal they follow was reached
        # in the conversation's stream: where to pick the stream up again after it.
        self.rejoined: dict[Stream, int] = {}
        self.inbox: deque[Item] = deque()
        self.ready: deque[tuple[Delivery, str | None]] = deque()
        self.wake = asyncio.Event()
        self.closed: str | None = None
        self.ended = asyncio.Event()  # set when closed: transports watch it

    # -- called by the hub (never blocks)

    def offer(self, item: Item) -> None:
        if self.closed is not None:
            return
        if len(self.inbox) >= self.limit:
            self.close("slow_consumer")
            return
        self.inbox.append(item)
        self.wake.set()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self.hub.forget(self)
            self.hub.ended[reason] = self.hub.ended.get(reason, 0) + 1
        self.wake.set()
        self.ended.set()

    # -- set-up

    def follow_now(self, stream: Stream, stream_id: int, pos: int) -> None:
        self.cursors[stream] = pos
        self.ids[stream] = stream_id
        self.hub.index_add(self, stream)

    def follow(self, stream: Stream, from_pos: int | None) -> None:
        """Start following a stream the user just joined (from `from_pos`, else its head)."""
        self.inbox.appendleft(_Follow(stream, from_pos))
        self.wake.set()

    def unfollow(self, stream: Stream) -> None:
        self.cursors.pop(stream, None)
        self.ids.pop(stream, None)
        self.hub.index_remove(self, stream)

    def catch_up(self) -> None:
        """Read everything after each position from the log before going live."""
        self.inbox.appendleft(_CatchUp(None))
        self.wake.set()

    def token(self) -> str:
        return encode({self.ids[s]: pos for s, pos in self.cursors.items() if s in self.ids})

    # -- consuming

    async def next(self, idle_s: float | None = None) -> tuple[Delivery, str | None] | None:
        """The next delivery and the resume token after it; None after `idle_s` seconds
        without any (for keep-alives). Raises Closed when the subscription has ended.
        (Never cancel a pending next(): time it out with `idle_s`.)"""
        while True:
            if self.ready:
                return self.ready.popleft()
            if self.closed is not None:
                raise Closed(self.closed)
            if not self.inbox:
                self.wake.clear()
                try:
                    async with asyncio.timeout(idle_s):
                        await self.wake.wait()
                except TimeoutError:
                    return None
                continue
            item = self.inbox.popleft()
            try:
                await self._handle(item)
            except DATABASE_ERRORS as exc:
                # The log cannot be read right now: end here; the client resumes from
                # the last position it got, with nothing lost.
                log.warning("subscription ended, the event log is unreadable: %s", exc)
                self.close("unavailable")

    def take_ready(self, limit: int) -> list[tuple[Delivery, str | None]]:
        """More deliveries that need no waiting: those already processed, then inbox
        events that are simply next in their stream. (To write several at once.)"""
        out: list[tuple[Delivery, str | None]] = []
        while len(out) < limit:
            if self.ready:
                out.append(self.ready.popleft())
                continue
            if not self.inbox or self.closed is not None:
                break
            item = self.inbox[0]
            if not isinstance(item, Delivery):
                break
            if item.pos is not None:
                cursor = self.cursors.get(item.stream)
                if cursor is not None and item.pos > cursor + 1:
                    break  # a gap: reading the log is the async path's job
                self.inbox.popleft()
                if cursor is not None and item.pos == cursor + 1:
                    self._push(item)
            else:
                self.inbox.popleft()
                if item.stream in self.cursors:
                    self.ready.append((item, None))
        return out

    async def _handle(self, item: Item) -> None:
        if isinstance(item, Delivery):
            await self._accept(item)
        elif isinstance(item, _Hint):
            if item.pos > self.cursors.get(item.stream, item.pos):
                await self._catch_up(item.stream, item.pos)
        elif isinstance(item, _CatchUp):
            if item.stream is None:
                await self._catch_up_all()
            else:
                await self._catch_up(item.stream, None)
        else:
            await self._follow(item)

    async def _accept(self, d: Delivery) -> None:
        if d.pos is None:  # ephemeral: for followers, no position, no resume
            if d.stream in self.cursors:
                self.ready.append((d, None))
            return
        cursor = self.cursors.get(d.stream)
        if cursor is None or d.pos <= cursor:
            return
        if d.pos > cursor + 1:
            await self._catch_up(d.stream, d.pos - 1)
            if self.cursors.get(d.stream) != d.pos - 1:
                return  # unfollowed meanwhile, or closed for a resync
        self._push(d)

    def _push(self, d: Delivery) -> None:
        assert d.pos is not None
        self.cursors[d.stream] = d.pos
        if self.reactor is not None:
            self.reactor(self, d)
        self.ready.append((d, self.token()))

    async def _catch_up(self, stream: Stream, upto: int | None) -> None:
        """Read (cursor, upto] of one stream from the log, a page at a time; the rest of
        a long backlog is read once the consumer has taken this page."""
        cursor = self.cursors.get(stream)
        stream_id = self.ids.get(stream)
        if cursor is None or stream_id is None:
            return
        rows = await self.hub.fetch(stream_id, cursor, CATCH_UP_PAGE)
        for row in rows:
            if upto is not None and row.pos > upto:
                break
            if self.cursors.get(stream) != row.pos - 1:
                if stream in self.cursors:  # a hole: those events were pruned
                    self.close("resync")
                return
            self._push(Delivery(stream, stream_id, row.pos, row.type, row.data))
        if len(rows) == CATCH_UP_PAGE and (upto is None or self.cursors.get(stream, upto) < upto):
            self.inbox.appendleft(_CatchUp(stream))

    async def _catch_up_all(self) -> None:
        heads = await self.hub.heads(list(self.ids.values()))
        for stream, stream_id in list(self.ids.items()):
            head = heads.get(stream_id)
            if head is None:
                continue
            last, pruned = head
            if self.cursors.get(stream, last) < pruned:
                self.close("resync")
                return
            if self.cursors.get(stream, last) < last:
                await self._catch_up(stream, None)

    async def _follow(self, item: _Follow) -> None:
        stream = item.stream
        if stream in self.cursors:
            if stream in self.tokenless and item.from_pos is not None:
                self.tokenless.discard(stream)
                if item.from_pos < self.cursors[stream]:
                    self.cursors[stream] = item.from_pos
                    await self._catch_up(stream, None)
            elif item.from_pos is not None and item.from_pos >= self.cursors[stream]:
                self.rejoined[stream] = item.from_pos  # a removal lies ahead in the stream
            return
        stream_id, head = await self.hub.ensure(stream)
        self.follow_now(stream, stream_id, head if item.from_pos is None else item.from_pos)
        await self._catch_up(stream, None)


class Hub:
    def __init__(
        self,
        pool: asyncpg.Pool,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        queue_limit: int = 1000,
        reactor: Reactor | None = None,
    ) -> None:
        self.pool = pool
        self._connect = connect
        self.queue_limit = queue_limit
        self.reactor = reactor
        self.index: dict[Stream, set[Subscriber]] = {}
        self.subscribers: set[Subscriber] = set()
        self.ended: dict[str, int] = {}  # subscriptions ended, by reason (for /metrics)
        # Called with (type, data) for every event of any user's stream, from any process.
        self.user_event_hooks: list[Callable[[str, Any], None]] = []
        # Called when the listener reconnects (notifications may have been missed).
        self.reconnect_hooks: list[Callable[[], None]] = []
        self.offered = 0  # deliveries offered to subscribers (for /metrics)
        self._tasks: set[asyncio.Task[None]] = set()
        # Streams with a batch being read from the log, and the batches that came after it.
        self._held: dict[Stream, list[tuple[int, int, int, list[tuple[str, Any]] | None]]] = {}
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="hub-listener")

    async def stop(self) -> None:
        self._stopping = True
        for sub in list(self.subscribers):
            sub.close("shutdown")
        await stop(self._task, *self._tasks)

    async def wait_listening(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.listening.wait()
        except TimeoutError:
            return False
        return True

    # -- subscribers

    def subscribe(self, user_id: UUID, session_id: UUID | None) -> Subscriber:
        sub = Subscriber(self, user_id, session_id, self.queue_limit, self.reactor)
        self.subscribers.add(sub)
        return sub

    def index_add(self, sub: Subscriber, stream: Stream) -> None:
        if sub.closed is not None:
            return
        self.index.setdefault(stream, set()).add(sub)
        sub.registered.add(stream)

    def index_remove(self, sub: Subscriber, stream: Stream) -> None:
        sub.registered.discard(stream)
        subs = self.index.get(stream)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.index[stream]

    def forget(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        for stream in list(sub.registered | set(sub.cursors)):
            self.index_remove(sub, stream)
        sub.registered.clear()

    def close_session(self, session_id: str) -> None:
        """A session was revoked: end every connection it holds, here and now."""
        for sub in list(self.subscribers):
            if str(sub.session_id) == session_id:
                sub.close("session_revoked")

    # -- reading the log

    async def _read(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read; after a restart of the database the pool may hand out a dead
        connection once, so a connection failure is retried once on another."""
        try:
            async with self.pool.acquire() as conn:
                return await query(conn)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            async with self.pool.acquire() as conn:
                return await query(conn)

    async def fetch(self, stream_id: int, after: int, limit: int) -> list[events_q.EventRow]:
        return await self._read(
            lambda conn: events_q.list_events_after(
                conn, stream_id=stream_id, after=after, limit=limit
            )
        )

    async def heads(self, stream_ids: list[int]) -> dict[int, tuple[int, int]]:
        if not stream_ids:
            return {}
        rows = await self._read(
            lambda conn: events_q.list_stream_heads(conn, stream_ids=stream_ids)
        )
        return {r.id: (r.last_pos, r.pruned_through) for r in rows}

    async def ensure(self, stream: Stream) -> tuple[int, int]:
        (row,) = await self._read(
            lambda conn: events_q.ensure_streams(
                conn, kinds=[stream.kind.value], entity_ids=[stream.entity_id]
            )
        )
        return row.id, row.last_pos

    # -- notifications

    def _on_event(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = orjson.loads(payload)
            stream = Stream(StreamKind(note["k"]), UUID(note["e"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed notification: %.200s", payload)
            return
        events = note.get("ev")
        if events is not None and stream.kind is StreamKind.USER:
            for event_type, data in events:
                if event_type == "session.revoked":
                    self.close_session(str(data.get("session_id")))
                for hook in self.user_event_hooks:
                    hook(event_type, data)
        if stream not in self.index:
            return
        batch = (note["s"], note["p"], note["n"], events)
        held = self._held.get(stream)
        if held is not None:  # an earlier batch of this stream is being read from the log
            held.append(batch)
        elif events is None:
            self._held[stream] = [batch]
            task = asyncio.get_running_loop().create_task(self._read_held(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._offer(stream, *batch)

    def _offer(
        self, stream: Stream, stream_id: int, last: int, count: int, events: list[tuple[str, Any]]
    ) -> None:
        subs = self.index.get(stream)
        if not subs:
            return
        first = last - count + 1
        deliveries = [
            Delivery(stream, stream_id, first + i, t, d) for i, (t, d) in enumerate(events)
        ]
        for sub in list(subs):
            for d in deliveries:
                sub.offer(d)
        self.offered += len(subs) * len(deliveries)

    async def _read_held(self, stream: Stream) -> None:
        """Events announced without their bodies (too big for a notification): read them
        from the log once for every subscriber of this process, then release what arrived
        meanwhile, in order."""
        held = self._held[stream]
        try:
            while held:
                stream_id, last, count, events = held.pop(0)
                if events is None:
                    try:
                        rows = await self.fetch(stream_id, last - count, count)
                    except DATABASE_ERRORS:
                        for sub in list(self.index.get(stream, ())):
                            sub.offer(_Hint(stream, last))  # each will retry on its own
                        continue
                    events = [(r.type, r.data) for r in rows if r.pos <= last]
                    last = last - count + len(events)
                    count = len(events)
                self._offer(stream, stream_id, last, count, events)
        finally:
            del self._held[stream]

    def _on_ephemeral(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = orjson.loads(payload)
            stream = Stream(StreamKind(note["k"]), UUID(note["e"]))
        except (ValueError, KeyError, TypeError):
            return
        subs = self.index.get(stream)
        if subs:
            d = Delivery(stream, 0, None, note["t"], note["d"])
            for sub in list(subs):
                sub.offer(d)

    async def _listen_forever(self) -> None:
        delay = 0.1
        connected_before = False
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._on_event)
                await conn.add_listener(EPHEMERAL_CHANNEL, self._on_ephemeral)
                self.listening.set()
                delay = 0.1
                if connected_before:  # notifications may have been missed: ask the log
                    for hook in self.reconnect_hooks:
                        hook()
                    log.info(
                        "listener reconnected; %d subscribers catch up from the log",
                        len(self.subscribers),
                    )
                    for sub in list(self.subscribers):
                        sub.catch_up()
                connected_before = True
                await self._watch(conn, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener connection failed: %s", exc)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            if not self._stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the listening connection is gone (checked by a ping as well, for
        connections that die without a word)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTENER_PING_S):
                    await lost.wait()
                return
            async with asyncio.timeout(LISTENER_PING_S):
                await select_one(conn)
