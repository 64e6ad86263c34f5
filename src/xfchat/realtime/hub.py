"""Fan-out: one LISTEN connection per process -> per-subscriber bounded inboxes.

The durable event log is the truth; notifications are fast hints that usually carry
the events themselves, and each subscriber (realtime/subscriber.py) reads from the log
whatever it finds missing.

The hub never waits for a subscriber: offering is a non-blocking append, and a
subscriber whose inbox is full is closed ("slow_consumer") so that its client resumes
from its last position instead of slowing everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.db.queries import event_log as events_q
from xfchat.db.queries.locks import select_one
from xfchat.realtime.events import EPHEMERAL_CHANNEL, NOTIFY_CHANNEL, Stream, StreamKind
from xfchat.realtime.subscriber import Delivery, Hint, Reactor, Subscriber
from xfchat.tasks import stop

log = logging.getLogger("xfchat.hub")
T = TypeVar("T")

LISTENER_PING_S = 2.0  # a silently dead listener is noticed within 4 s


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
        parsed = _parse(payload)
        if parsed is None:
            return
        note, stream = parsed
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
            self._offer(stream, note["s"], note["p"], note["n"], events)

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
                            sub.offer(Hint(stream, last))  # each will retry on its own
                        continue
                    events = [(r.type, r.data) for r in rows if r.pos <= last]
                    last = last - count + len(events)
                    count = len(events)
                self._offer(stream, stream_id, last, count, events)
        finally:
            del self._held[stream]

    def _on_ephemeral(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        parsed = _parse(payload)
        if parsed is None:
            return
        note, stream = parsed
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
            except DATABASE_ERRORS as exc:
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


def _parse(payload: str) -> tuple[dict[str, Any], Stream] | None:
    """A notification and the stream it is about; None (logged) if it is malformed."""
    try:
        note = orjson.loads(payload)
        return note, Stream(StreamKind(note["k"]), UUID(note["e"]))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed notification: %.200s", payload)
        return None
