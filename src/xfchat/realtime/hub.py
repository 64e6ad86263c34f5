"""Fan-out: one LISTEN connection per process -> live subscribers, in log order.

Every commit to the event log has the next `g` (db/queries/event_log.py) and is
announced, usually with its events, on NOTIFY. The hub hands commits to its
subscribers strictly in g order: a commit announced without its events (too big), or
one that comes after a gap (a listener that reconnected, notifications dropped to
bound memory), is read from the log first, once for the whole process, a bounded
page of commits at a time. While it reads, later commits wait (at most HOLD_EVENTS
events; beyond that they are dropped and read from the log too), and so do the signals
(typing, presence, voice signalling: not stored) that came after them: a signal is
handed over after every commit announced before it, judged by who follows what once
those commits are handed over (a kick's, a hide's), never by who followed before.

The hub never waits for a subscriber: offering is a non-blocking append, and a
subscriber whose queue is full is closed ("slow_consumer") so that its client resumes
from its last position instead of slowing everyone else.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.db.queries import event_log as q
from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries.locks import select_one
from xfchat.domain.event_payloads import PresencePayload
from xfchat.domain.events import (
    EPHEMERAL_CHANNEL,
    PRESENCE_UPDATED,
    SESSION_REVOKED,
    AccessChange,
    Stream,
    StreamKind,
)
from xfchat.domain.feeds import read_access_changes
from xfchat.domain.presence import presences_now
from xfchat.errors import RateLimited
from xfchat.realtime.cursor import Position, TokenCodec
from xfchat.realtime.follows import Follows
from xfchat.realtime.presence import PresenceTracker
from xfchat.realtime.subscriber import ACCESS_LOST, Delivery, Subscriber
from xfchat.tasks import stop

log = logging.getLogger("xfchat.hub")
T = TypeVar("T")

LISTENER_PING_S = 2.0  # a silently dead listener is noticed within 4 s
LISTENER_BUSY_S = 10.0  # (or 12 s, while it reads missed commits)
FILL_PAGE = 200  # commits read from the log at once
HOLD_EVENTS = 20_000  # announced events held while earlier ones are read from the log
# How often the sessions of the live connections are looked at: one that ended without
# a revocation (it expired: its client stopped refreshing) ends its connections.
SESSIONS_CHECK_S = 60.0
HOLD_PIECES = 64  # signals to a connection here being put together from their pieces
HOLD_SIGNALS = 10_000  # signals waiting for the commits announced before them
HOLD_SIGNAL_BYTES = 8 * 1024 * 1024  # (and their payloads' size together)
TO_CONNECTION = '{"to":"'  # how a signal to one connection starts (domain/events.py)


@dataclass
class _Commit:
    """A commit being assembled from its notifications."""

    g: int
    stream: Stream
    first: int
    last: int
    events: dict[int, tuple[str, Any]] = field(default_factory=dict)
    covered: int = 0  # positions announced so far
    bodiless: bool = False  # some were announced without their events

    @property
    def complete(self) -> bool:
        return self.covered >= self.last - self.first + 1


def counted_streams(follows: Follows) -> int:
    """What a subscription following `follows` counts against its user's budget
    (`follows_per_user`): its channels and servers, and the user's own stream."""
    return len(follows.followed) + 1


class Hub:
    def __init__(
        self,
        pool: asyncpg.Pool,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        codec: TokenCodec,
        *,
        queue_limit: int = 1000,
        connections_per_user: int | None = None,
        follows_per_user: int | None = None,
    ) -> None:
        self.pool = pool
        self._connect = connect
        self.codec = codec
        self.queue_limit = queue_limit
        self.index: dict[Stream, set[Subscriber]] = {}
        self.subscribers: set[Subscriber] = set()
        self.connections_per_user = connections_per_user
        self.per_user: dict[UUID, int] = {}  # open subscriptions of each user, here
        # The streams a user's subscriptions here follow, all together (each followed
        # stream holds a few hundred bytes a subscription: an account in 200 servers of
        # 500 channels follows 100,000 on each of its connections).
        self.follows_per_user = follows_per_user
        self.followed_by: dict[UUID, int] = {}
        self._counted: dict[Subscriber, int] = {}  # what each subscription added there
        self.connections: dict[UUID, Subscriber] = {}  # by id: signals addressed to one
        self._pieces: dict[str, dict[int, bytes]] = {}  # signals arriving in pieces
        self.ended: dict[str, int] = {}  # subscriptions ended, by reason (for /metrics)
        # Called with (type, data) for every event of any user's stream, from any process.
        self.user_event_hooks: list[Callable[[str, Any], None]] = []
        # Called when the listener reconnects (notifications may have been missed).
        self.reconnect_hooks: list[Callable[[], None]] = []
        self.offered = 0  # deliveries offered to subscribers (for /metrics)
        self.fill_reads = 0  # reads of missed commits from the log (for /metrics)
        self.replay_reads = 0  # pages read by subscribers catching up on their own
        self.listener_pid: int | None = None  # the LISTEN connection's backend
        self.last_g = 0  # the last commit handed to subscribers
        self.known = asyncio.Event()  # last_g has been read from the log
        self._pending: dict[int, _Commit] = {}
        self._pending_events = 0
        self._fill_to = 0  # commits up to here exist and must be read from the log
        self._announced = 0  # the last commit announced (or found in the log at a connect)
        # Signals, each with the last commit announced before it (NOTIFY delivers in
        # commit order), until that commit is handed over.
        self._signals: deque[tuple[int, str]] = deque()
        self._signal_bytes = 0
        self._signal_turn: asyncio.Handle | None = None  # (the rest, next turn: paced)
        self.signals_dropped = 0  # signals dropped from a full hold (for /metrics)
        # presence.updated signals handed over so far: a connection that was not live
        # yet when one went by reads the presences again (Subscriber.watch_presences).
        self.presence_signals = 0
        self._filling: asyncio.Task[None] | None = None
        self._turn_handed = 0  # events handed over in this turn of the event loop (_room)
        self._turn_reset: asyncio.Handle | None = None
        self.listening = asyncio.Event()
        # The LISTEN connection, while it is up: the commits missing from notifications are
        # read on it (one query at a time), so delivery never waits for the request pool.
        self._listener: asyncpg.Connection | None = None
        self._listener_busy = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._sessions_task: asyncio.Task[None] | None = None
        self._stopping = False
        # Shutting down: every subscription ends, new ones at once, and what waits for a
        # client before it has one (a gateway connection before IDENTIFY) says goodbye.
        self.ending = asyncio.Event()
        # The subscriptions whose transport still serves them (until Subscriber.release):
        # a shutdown waits for these to say goodbye.
        self.held: set[Subscriber] = set()
        self._released = asyncio.Event()
        # Told of every user-feed connection that opens and closes (presence).
        self.presence: PresenceTracker | None = None

    @property
    def caught_up(self) -> bool:
        """Listening, and every commit announced so far handed over: a revocation
        committed elsewhere has reached this process's cache of live sessions."""
        return self.listening.is_set() and self._announced <= self.last_g

    # -- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="hub-listener")
        self._sessions_task = asyncio.create_task(self._watch_sessions(), name="hub-sessions")

    async def stop(self) -> None:
        self._stopping = True
        for sub in list(self.subscribers):
            sub.close("shutdown")
        await stop(self._task, self._filling, self._sessions_task)

    async def end_streams(self, within_s: float) -> bool:
        """Shutting down: close every subscription ("shutdown": its client resumes, here
        later or on another process), and any opened from now on at once; wait at most
        `within_s` for their transports to have said so. True if they all did."""
        self.ending.set()
        for sub in list(self.subscribers):
            sub.close("shutdown")
        try:
            async with asyncio.timeout(within_s):
                while self.held:
                    self._released.clear()
                    await self._released.wait()
        except TimeoutError:
            return False
        return True

    def released(self, sub: Subscriber) -> None:
        """`sub`'s transport is done with it (Subscriber.release)."""
        self.held.discard(sub)
        self._released.set()

    async def wait_listening(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.listening.wait()
        except TimeoutError:
            return False
        return True

    # -- subscribers

    def admit(self, user_id: UUID, follows: int = 1) -> None:
        """Raises RateLimited (TOO_MANY_CONNECTIONS) if the user holds as many live
        connections here as one user may, or if one more following `follows` streams
        would take what their connections here follow together past
        `follows_per_user` (a user's first connection is always admitted)."""
        limit = self.connections_per_user
        held = self.per_user.get(user_id, 0)
        if limit is not None and held >= limit:
            raise RateLimited(
                f"you have {limit} live connections to this server already: close one first",
                code="TOO_MANY_CONNECTIONS",
            )
        budget = self.follows_per_user
        followed = self.followed_by.get(user_id, 0)
        if budget is not None and held and followed + follows > budget:
            raise RateLimited(
                f"your {held} live connections to this server follow {followed} channels"
                f" and servers already; with {follows} more they would pass {budget}:"
                " close one first",
                code="TOO_MANY_CONNECTIONS",
            )

    def subscribe(self, user_id: UUID, session_id: UUID | None, follows: Follows) -> Subscriber:
        """A new subscription of the user's (RateLimited: TOO_MANY_CONNECTIONS, see admit)."""
        counted = counted_streams(follows)
        self.admit(user_id, counted)
        self.per_user[user_id] = self.per_user.get(user_id, 0) + 1
        self.followed_by[user_id] = self.followed_by.get(user_id, 0) + counted
        sub = Subscriber(
            self, user_id, session_id, follows, self.codec.tag(user_id), self.queue_limit
        )
        self._counted[sub] = counted
        self.subscribers.add(sub)
        self.connections[sub.id] = sub
        self.held.add(sub)
        if self.ending.is_set():  # (its transport says goodbye at once)
            sub.close("shutdown")
        return sub

    def go_live(self, sub: Subscriber) -> bool:
        """Hand `sub` every commit after its replay, if the hub is not past it already
        (then it replays further first)."""
        caught_up = sub.cursor.g - 1
        if sub.closed is not None or not self.known.is_set() or self.last_g > caught_up:
            return False
        sub.live, sub.live_from = True, caught_up
        for stream in sub.follows.streams():
            self._index_add(sub, stream)
        return True

    def _index_add(self, sub: Subscriber, stream: Stream) -> None:
        self.index.setdefault(stream, set()).add(sub)

    def _index_remove(self, sub: Subscriber, stream: Stream) -> None:
        subs = self.index.get(stream)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.index[stream]

    def opened(self, sub: Subscriber) -> None:
        """`sub` is a user's connection (SSE or the gateway): it makes them present."""
        if self.presence is not None and not sub.present and sub.closed is None:
            sub.present = True
            self.presence.connected(sub.user_id)

    def forget(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            left = self.per_user.pop(sub.user_id, 1) - 1
            if left > 0:
                self.per_user[sub.user_id] = left
            followed = self.followed_by.pop(sub.user_id, 0) - self._counted.pop(sub, 0)
            if left > 0 and followed > 0:
                self.followed_by[sub.user_id] = followed
        self.subscribers.discard(sub)
        self.connections.pop(sub.id, None)
        if self.presence is not None:
            self.presence.voice_closed(sub.id)  # its voice state goes (if it held one)
        if sub.present:
            sub.present = False
            if self.presence is not None:
                self.presence.disconnected(sub.user_id)
        if sub.live:
            for stream in sub.follows.streams():
                self._index_remove(sub, stream)

    async def close_ended_sessions(self) -> int:
        """End every connection whose session has ended without a revocation, which
        close_session hears of: expired (its client refreshed no token for the
        refresh token's lifetime) or deleted. A stream outlives its access token, not its
        session. How many were ended."""
        held = {sub.session_id for sub in self.subscribers if sub.session_id is not None}
        if not held:
            return 0
        ended = await self._read(lambda conn: sessions_q.ended_sessions(conn, list(held)))
        return self._end_sessions({str(s) for s in ended})

    async def _watch_sessions(self) -> None:
        while True:
            await asyncio.sleep(SESSIONS_CHECK_S)
            try:
                await self.close_ended_sessions()
            except DATABASE_ERRORS:  # (the listener says the database is away)
                log.debug("the live connections' sessions not looked at", exc_info=True)

    def close_session(self, session_id: str) -> None:
        """A session was revoked: end every connection it holds, here and now."""
        self._end_sessions({session_id})

    def _end_sessions(self, session_ids: set[str]) -> int:
        """End every connection of these sessions (`session_revoked`); how many."""
        closing = [sub for sub in self.subscribers if str(sub.session_id) in session_ids]
        for sub in closing:
            sub.close("session_revoked")
        return len(closing)

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

    async def _read_commits(self, after: int, upto: int) -> list[q.CommitEvent]:
        """On the LISTEN connection when it is up: a request pool that slow requests hold
        to the last connection must not hold back every subscriber's delivery."""
        conn = self._listener
        if conn is not None:
            async with self._listener_busy:
                if not conn.is_closed() and self._listener is conn:
                    return await q.list_commits(conn, after=after, upto=upto)
        return await self._read(lambda conn: q.list_commits(conn, after=after, upto=upto))

    async def head(self) -> q.LogHead:
        return await self._read(q.get_log_head)

    async def read_feed(
        self, user_id: UUID, streams: list[Stream], after: Position, upto: int, limit: int
    ) -> list[q.LogEvent]:
        self.replay_reads += 1
        channels = [s.entity_id for s in streams if s.kind is StreamKind.CHANNEL]
        servers = [s.entity_id for s in streams if s.kind is StreamKind.SERVER]
        return await self._read(
            lambda conn: q.list_feed_events(
                conn,
                user_id=user_id,
                channel_ids=channels,
                server_ids=servers,
                after_g=after.g,
                after_pos=after.pos,
                upto_g=upto,
                limit=limit,
            )
        )

    async def read_presences(self, user_id: UUID) -> tuple[PresencePayload, list[PresencePayload]]:
        """The user's own presence and the related presences a `ready` carries, now."""
        timeout_s = self.presence.timeout_s if self.presence is not None else 0.0
        return await self._read(lambda conn: presences_now(conn, user_id, timeout_s))

    async def read_access_changes(
        self, user_id: UUID, after: Position, upto: int
    ) -> list[tuple[str, Any]] | None:
        """The user's access changes after a place, up to a commit; None if there are
        too many to replay (the client resyncs)."""
        return await self._read(
            lambda conn: read_access_changes(conn, user_id, (after.g, after.pos), upto)
        )

    # -- handing commits over

    def _dispatch(self, g: int, stream: Stream, events: list[tuple[int, str, Any]]) -> None:
        self._hand(g, stream, events)
        self._release_signals()

    def _hand(self, g: int, stream: Stream, events: list[tuple[int, str, Any]]) -> None:
        self.last_g = g
        self._spent(len(events))
        deliveries = [Delivery(g, stream, pos, t, d) for pos, t, d in events]
        if stream.kind is StreamKind.USER:
            for d in deliveries:
                if d.type == SESSION_REVOKED.name and isinstance(d.data, dict):
                    self.close_session(str(d.data.get("session_id")))
                for hook in self.user_event_hooks:
                    hook(d.type, d.data)
        subs = self.index.get(stream)
        if not subs:
            return
        if stream.kind is not StreamKind.USER:
            # Only a user's own stream changes what is followed, so a channel's or a
            # server's commit is judged once per subscriber, not once per event.
            for sub in list(subs):
                if g > sub.live_from and stream in sub.follows.followed:
                    sub.offer_all(deliveries)
                    self.offered += len(deliveries)
            return
        for sub in list(subs):
            if g <= sub.live_from:
                continue
            for d in deliveries:
                if sub.closed is not None:
                    # Closed by an earlier event of this commit (its queue overflowed):
                    # forgotten, so no later grant of the commit may index it again.
                    break
                visible, changes = sub.follows.apply(stream, d.type, d.data)
                for kind, target in changes:
                    if kind is AccessChange.GRANT:
                        self._index_add(sub, target)
                    else:
                        self._index_remove(sub, target)
                if visible:
                    sub.offer(d)
                    self.offered += 1
                if sub.follows.lost:  # a one-channel subscription ends right there
                    sub.close(ACCESS_LOST)
                    break

    def _on_event(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = orjson.loads(payload)
            g = int(note["g"])
            stream = Stream(StreamKind(note["k"]), UUID(note["e"]))
            first, last, upto, count = (
                int(note["f"]),
                int(note["l"]),
                int(note["p"]),
                int(note["n"]),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed notification: %.200s", payload)
            return
        self._announced = max(self._announced, g)
        if self.known.is_set() and g <= self.last_g:
            return
        commit = self._pending.get(g)
        if commit is None:
            commit = self._pending[g] = _Commit(g, stream, first, last)
        commit.covered += count
        events = note.get("ev")
        if events is None:
            commit.bodiless = True
        else:
            for offset, (event_type, data) in enumerate(events):
                commit.events[upto - count + 1 + offset] = (event_type, data)
            self._pending_events += len(events)
        if self._pending_events > HOLD_EVENTS:  # too much to hold: the log has it all
            self._fill_to = max([self._fill_to, *self._pending])
            self._pending.clear()
            self._pending_events = 0
        self._advance()

    def _advance(self) -> None:
        """Hand over the commits that are next and complete (what is left of this turn's
        share); start a read of the log if something after a gap (or a commit without its
        events) is waiting, or a task to hand over the rest."""
        if not self.known.is_set():
            return
        if self._room() > 0:
            self._advance_only(self._room())
        if self._filling is None and (self._gap() or self._next_ready()):
            self._filling = asyncio.get_running_loop().create_task(self._fill(), name="hub-fill")

    def _take(self, g: int) -> None:
        commit = self._pending.pop(g, None)
        if commit is not None:
            self._pending_events -= len(commit.events)

    def _next_ready(self) -> bool:
        nxt = self._pending.get(self.last_g + 1)
        return nxt is not None and nxt.complete and not nxt.bodiless

    def _gap(self) -> bool:
        if self._fill_to > self.last_g:
            return True
        nxt = self._pending.get(self.last_g + 1)
        if nxt is not None and nxt.complete and nxt.bodiless:
            return True
        return any(g > self.last_g + 1 for g in self._pending)

    # Pacing. The connections write what they were handed before more is handed over: at
    # most a quarter of a queue of events a turn of the event loop, whichever path hands
    # them over (a notification, or the task reading the log). A page of commits handed
    # at once, or a notification's share after another's in one turn, would overflow the
    # queue of a client that keeps up and cut it off as a slow consumer.

    def _room(self) -> int:
        return max(1, self.queue_limit // 4) - self._turn_handed

    def _spent(self, events: int) -> None:
        self._turn_handed += events
        if self._turn_reset is None:
            self._turn_reset = asyncio.get_running_loop().call_soon(self._new_turn)

    def _new_turn(self) -> None:
        self._turn_handed = 0
        self._turn_reset = None

    async def _next_turn(self) -> None:
        """Return when this turn has room for more (at once, if it has). The wait is a
        turn, not an event: the count starts again before this task resumes (_spent), but
        notifications handled in that turn may spend its share first."""
        while self._room() <= 0:  # noqa: ASYNC110
            await asyncio.sleep(0)

    async def _fill(self) -> None:
        """Read what is missing from the log, a page of commits at a time, in order, and
        hand over what is next, paced."""
        delay = 0.1
        try:
            while not self._stopping:
                while self._next_ready():
                    await self._next_turn()
                    if self._stopping:
                        return
                    self._advance_only(self._room())
                if not self._gap():
                    break
                target = max([self._fill_to, self.last_g, *self._pending])
                upto = min(target, self.last_g + FILL_PAGE)
                try:
                    rows = await self._read_commits(self.last_g, upto)
                except DATABASE_ERRORS as exc:
                    log.warning("cannot read missed commits from the log yet: %s", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                self.fill_reads += 1
                for g, group in groupby(rows, key=lambda r: r.g):
                    await self._next_turn()
                    if self._stopping:
                        return
                    if g <= self.last_g:
                        continue
                    if g != self.last_g + 1:
                        self._lost(self.last_g + 1, g - 1)
                    items = list(group)
                    self._take(g)
                    stream = Stream(StreamKind(items[0].kind), items[0].entity_id)
                    self._dispatch(g, stream, [(r.pos, r.type, r.data) for r in items])
                if self.last_g < upto:
                    self._lost(self.last_g + 1, upto)
                    self.last_g = upto
                    self._release_signals()
                for g in [g for g in self._pending if g <= self.last_g]:
                    self._take(g)
        finally:
            self._filling = None
        if not self._stopping:
            self._advance()

    def _advance_only(self, budget: int) -> None:
        """Hand over the commits that are next and complete, until `budget` events went
        (at least one commit, if one is ready)."""
        handed = 0
        while handed < budget or handed == 0:
            commit = self._pending.get(self.last_g + 1)
            if commit is None or not commit.complete or commit.bodiless:
                return
            self._take(commit.g)
            events = [(p, *e) for p, e in sorted(commit.events.items())]
            self._dispatch(commit.g, commit.stream, events)
            handed += len(events)

    def _lost(self, first: int, last: int) -> None:
        """Commits that are gone from the log (retention removed them before this
        process read them): its subscribers may have missed something; they resync."""
        log.warning("commits %d-%d left the log before this process read them", first, last)
        for sub in list(self.subscribers):
            if sub.live:
                sub.close("resync")

    def _on_ephemeral(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """A signal (not stored), handed over once the commits announced before it are:
        at once, unless the hub is reading earlier ones from the log (at most
        HOLD_SIGNALS and HOLD_SIGNAL_BYTES wait; past that the oldest is dropped, as a
        signal lost with a connection would be)."""
        if not self._signals and self._announced <= self.last_g:
            self._signal(payload)
            return
        if payload.startswith(TO_CONNECTION) and not self._held_here(payload):
            return  # (to a connection of another process: nothing to hold)
        self._signals.append((self._announced, payload))
        self._signal_bytes += len(payload)
        while len(self._signals) > HOLD_SIGNALS or self._signal_bytes > HOLD_SIGNAL_BYTES:
            self._signal_bytes -= len(self._signals.popleft()[1])
            self.signals_dropped += 1

    def _held_here(self, payload: str) -> bool:
        """Whether a signal to one connection (`{"to":"<id>",...}`) is to one here."""
        try:
            return UUID(payload[len(TO_CONNECTION) : len(TO_CONNECTION) + 36]) in self.connections
        except ValueError:
            return True  # (malformed: _signal says so)

    def _release_signals(self) -> None:
        """Hand over the signals whose earlier commits are all handed over, in order,
        paced as commits are: a turn's share at most, the rest in the turns after (a
        hold of many let go at once overflowed the queue of a client that kept up, and
        cut it off as a slow consumer: a review's find)."""
        while self._signals and self._signals[0][0] <= self.last_g:
            if self._room() <= 0:
                if self._signal_turn is None:
                    loop = asyncio.get_running_loop()
                    self._signal_turn = loop.call_soon(self._next_signals)
                return
            payload = self._signals.popleft()[1]
            self._signal_bytes -= len(payload)
            self._spent(1)
            self._signal(payload)

    def _next_signals(self) -> None:
        self._signal_turn = None
        self._release_signals()

    def _signal(self, payload: str) -> None:
        """A signal: to the followers of its stream, or, when it lists channels ("c"), to
        their followers other than its subject's own connections; or to one connection."""
        try:
            note = orjson.loads(payload)
            if "to" in note:
                self._to_connection(note)
                return
            stream = Stream(StreamKind(note["k"]), UUID(note["e"]))
            d = Delivery(0, stream, 0, str(note["t"]), note["d"])
            if d.type == PRESENCE_UPDATED.name:
                self.presence_signals += 1
            channels = [Stream.channel(UUID(c)) for c in note.get("c", ())]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed notification: %.200s", payload)
            return
        if not channels:
            for sub in list(self.index.get(stream, ())):
                sub.offer(d)
            return
        reached: set[Subscriber] = set()
        for channel in channels:
            reached.update(self.index.get(channel, ()))
        for sub in reached:
            if sub.user_id != stream.entity_id:
                sub.offer(d)

    def _to_connection(self, note: dict[str, Any]) -> None:
        """A signal to one connection (domain/events.py `signal_connection`): whole
        (`m`), or one of `n` pieces (`x`, `i`, `b`) of a longer one, the pieces of one
        signal arriving together (one transaction's notifications are delivered in a
        row). Only the process holding the connection keeps anything."""
        sub = self.connections.get(UUID(str(note["to"])))
        if sub is None or sub.closed is not None:
            return
        if "m" in note:
            message = note["m"]
        else:
            key, count = str(note["x"]), int(note["n"])
            parts = self._pieces.setdefault(key, {})
            try:
                parts[int(note["i"])] = base64.b64decode(note["b"], validate=True)
            except binascii.Error:
                raise ValueError("a piece that is not base64") from None
            while len(self._pieces) > HOLD_PIECES:  # (oldest first: never completed)
                del self._pieces[next(iter(self._pieces))]
            if len(parts) < count:
                return
            del self._pieces[key]
            message = orjson.loads(b"".join(parts[i] for i in range(count)))
        sub.offer(Delivery(0, Stream.user(sub.user_id), 0, str(message["t"]), message["d"]))

    # -- the listener

    async def _listen_forever(self) -> None:
        delay = 0.1
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                self.listener_pid = conn.get_server_pid()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(q.NOTIFY_CHANNEL, self._on_event)
                await conn.add_listener(EPHEMERAL_CHANNEL, self._on_ephemeral)
                head = await q.get_log_head(conn)
                self._listener = conn
                self._listening(head.g)
                delay = 0.1
                await self._watch(conn, lost)
            except DATABASE_ERRORS as exc:
                log.warning("listener connection failed: %s", exc)
            finally:
                self._listener = None
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            if not self._stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _listening(self, head: int) -> None:
        """Listening from now on; `head` is the log's last commit as of then."""
        self._announced = max(self._announced, head)
        if not self.known.is_set():
            self.last_g = head
            for g in [g for g in self._pending if g <= head]:
                self._take(g)
            self.known.set()
            self._release_signals()
        else:  # notifications may have been missed: ask the log
            self._fill_to = max(self._fill_to, head)
            for hook in self.reconnect_hooks:
                hook()
            missed = f"commits {self.last_g + 1}-{head}" if head > self.last_g else "no commit"
            log.info(  # (was "76-75" for none)
                "listener reconnected; reading %s for %d subscribers", missed, len(self.subscribers)
            )
        self.listening.set()
        self._advance()

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the listening connection is gone (checked by a ping as well, for
        connections that die without a word)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTENER_PING_S):
                    await lost.wait()
                return
            # (the wait for a fill read on it counts too: one on a connection that died
            # without a word would hold the lock until TCP gave up, minutes later)
            async with asyncio.timeout(LISTENER_BUSY_S):
                async with self._listener_busy, asyncio.timeout(LISTENER_PING_S):
                    await select_one(conn)
