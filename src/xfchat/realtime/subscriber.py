"""What one connection receives, in log order, with the resume token of each event.

A subscriber starts at a place in the log: the head (a fresh connection) or the place
a resume token names. Until it has caught up with its process's hub it replays the log
itself, a page at a time, as fast as its client reads (so memory stays bounded); then
it goes live: the hub hands it each new commit (realtime/hub.py). Both paths judge
every event with the same `Follows`, so a resume from any token ever handed out yields
exactly what a connection that never dropped received after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import orjson

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.domain.event_payloads import PresencePayload
from xfchat.domain.events import PRESENCE_UPDATED, SESSION_REVOKED, Stream, StreamKind
from xfchat.realtime.cursor import Position, TokenCodec
from xfchat.realtime.follows import Follows

if TYPE_CHECKING:
    from xfchat.realtime.hub import Hub

log = logging.getLogger("xfchat.hub")
PRESENCE_READS = 3  # reads of the presences as a feed goes live, at most (_presences_since_ready)
T = TypeVar("T")

REPLAY_PAGE = 500


def _ordered(streams: set[Stream]) -> list[Stream]:
    return sorted(streams, key=Stream.lock_order)


class Delivery:
    """One event (or an ephemeral signal, with g 0) on its way to subscribers. Shared by
    all of them: its JSON is encoded once, and framed once per transport (`framed`);
    what each subscriber adds is its resume token."""

    __slots__ = (
        "_framed",
        "_head",
        "_json",
        "_position",
        "data",
        "g",
        "pos",
        "stream",
        "type",
    )

    def __init__(self, g: int, stream: Stream, pos: int, type: str, data: Any) -> None:
        self.g = g
        self.stream = stream
        self.pos = pos
        self.type = type
        self.data = data
        self._json: bytes | None = None
        self._framed: dict[str, Any] | None = None
        self._position: Position | None = None
        self._head: str | None = None

    @property
    def position(self) -> Position:
        """Its place in the log (a stored event's)."""
        if self._position is None:
            self._position = Position(self.g, self.pos)
            self._head = TokenCodec.head(TokenCodec.place(self._position))
        return self._position

    def token_head(self) -> str | None:
        """The beginning every subscriber's resume token here shares (TokenCodec.head),
        encoded once; None when its place has no room to be padded
        (Subscriber.token_at makes the token whole then)."""
        _ = self.position
        return self._head

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.data)
        return self._json

    def framed(self, transport: str, make: Callable[[Delivery], T]) -> T:
        """This delivery as `transport` frames it (the part every subscriber shares),
        made by `make` the first time a subscriber of that transport asks."""
        if self._framed is None:
            self._framed = {}
        found = self._framed.get(transport)
        if found is None:
            found = self._framed[transport] = make(self)
        return found

    @property
    def stored(self) -> bool:
        return self.g > 0


ACCESS_LOST = "access_lost"  # (a one-channel subscription's end, as /metrics counts it)


class Closed(Exception):
    """The subscription ended; `reason` tells the transport what to tell its client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Subscriber:
    def __init__(
        self,
        hub: Hub,
        user_id: UUID,
        session_id: UUID | None,
        follows: Follows,
        tag: bytes,
        limit: int,
    ) -> None:
        self.hub = hub
        self.id = uuid.uuid4()  # this connection, to which signals can be addressed
        self.user_id = user_id
        self.session_id = session_id
        self.follows = follows
        self.tag = tag
        self.token_tail = TokenCodec.tail(tag)  # what its tokens add to a Delivery's head
        self.limit = limit
        self.queue: deque[Delivery] = deque()
        # What a waiting next() sleeps on (a bare future, set by `_wake`), and its one
        # idle timer (re-armed lazily, not made and cancelled at every wait): per
        # delivery, a wake costs a future, never a timer (bench.costs, issue 14).
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_at: float | None = None  # when the current wait becomes a keep-alive
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle = False  # the timer ended the current wait
        self.closed: str | None = None
        self.ended = asyncio.Event()  # set when closed: transports watch it
        self.position = Position(0, 0)  # the last place handed over
        self.cursor = Position(0, 0)  # the replay's place: everything before is judged
        self.replay_upto = 0  # the last commit of the current replay range
        self.candidates: list[Stream] = []  # the streams that range reads
        self.live = False  # the hub hands it new commits
        self.live_from = 0  # ... those after this one
        self.present = False  # it counts in its user's presence (hub.opened)
        # The presences its `ready` carried (own, by user id the others), and how many
        # presence signals the hub had handed over before they were read: see
        # watch_presences.
        self._ready_presences: tuple[PresencePayload, dict[str, PresencePayload]] | None = None
        self._presence_mark = 0

    # -- set-up (realtime/feeds.py)

    def start(self, position: Position, upto: int, granted: set[Stream]) -> None:
        """Replay from `position` to commit `upto`, reading the followed streams and
        those `granted` on the way; then go live."""
        self.position = self.cursor = position
        self.replay_upto = upto
        self.candidates = _ordered(self.follows.followed | granted)
        if position.g > upto:  # (g, 0) is before commit g; (g, pos) inside it
            self.cursor = Position(upto + 1, 0)

    def watch_presences(
        self, mark: int, own: PresencePayload, others: list[PresencePayload]
    ) -> None:
        """The presences its `ready` carries (`own`, and the others not offline), read
        once the hub had handed over `mark` presence signals. A signal handed over
        after that read and before this connection goes live reaches it not (only live
        connections hear signals): when one went by meanwhile, the presences are read
        again as it goes live, and each that changed since the `ready` follows as its
        `presence.updated` (else it showed, until the next change, what the `ready`
        said: a friend online while they were away)."""
        self._ready_presences = own, {p["user_id"]: p for p in others}
        self._presence_mark = mark

    async def _presences_since_ready(self) -> None:
        ready = self._ready_presences
        self._ready_presences = None
        if ready is None or self.hub.presence_signals == self._presence_mark:
            return
        # Live now, it hears each change as it is handed over: one handed over while the
        # presences are read may be newer than what the read saw, and what is offered
        # after it would undo it. So the read is made again while changes go by during
        # it (a read begun after a change's signal sees its commit), a few times at most.
        for _ in range(PRESENCE_READS):
            mark = self.hub.presence_signals
            try:
                own, others = await self.hub.read_presences(self.user_id)
            except DATABASE_ERRORS as exc:  # (presence is not in the log: the next change)
                log.warning("could not read the presences again: %s", exc)
                return
            if self.hub.presence_signals == mark:
                break
        was_own, was = ready
        now = {p["user_id"]: p for p in others}
        changed = [own] if own != was_own else []
        for user_id in sorted(was.keys() | now.keys()):
            offline: PresencePayload = {
                "user_id": user_id,
                "status": "offline",
                "status_text": None,
            }
            current = now.get(user_id, offline)
            if current != was.get(user_id, offline):
                changed.append(current)
        for payload in changed:
            stream = Stream.user(UUID(payload["user_id"]))
            self.offer(Delivery(0, stream, 0, PRESENCE_UPDATED.name, payload))

    def token(self, position: Position | None = None) -> str:
        return TokenCodec.encode(self.tag, position or self.position)

    # -- called by the hub (never blocks)

    def offer(self, d: Delivery) -> None:
        self.offer_all([d])

    def offer_all(self, ds: list[Delivery]) -> None:
        """Queue `ds` and wake the consumer once; a subscriber whose queue they overflow
        is closed as a slow consumer (after what fits)."""
        if self.closed is not None:
            return
        room = self.limit - len(self.queue)
        if len(ds) > room:
            self.queue.extend(ds[: max(room, 0)])
            self.close("slow_consumer")
            return
        self.queue.extend(ds)
        self._wake()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self.hub.forget(self)
            self.hub.ended[reason] = self.hub.ended.get(reason, 0) + 1
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
        self._wake()
        # A subscription whose channel was taken away writes what came before the
        # change first: it ends for its transport (which otherwise gives a writer that
        # is still busy STALL_GRACE_S, then cuts it off) once that is handed over.
        if reason != ACCESS_LOST or not self.queue:
            self.ended.set()

    def release(self) -> None:
        """Its transport is done with it (the connection ended): closed, if it was not,
        and no longer waited for by a shutdown (Hub.end_streams)."""
        self.close("disconnected")
        self.hub.released(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_idle(self) -> None:
        """The idle timer: end the wait if it has lasted its `idle_s`, else come back
        when it will have."""
        self._idle_timer = None
        if self._idle_at is None or self.closed is not None:
            return
        assert self._loop is not None
        if self._loop.time() >= self._idle_at - 0.001:  # (a timer may run a hair early)
            self._idle = True
            self._wake()
        else:
            self._idle_timer = self._loop.call_at(self._idle_at, self._check_idle)

    # -- consuming

    async def next(self, idle_s: float | None = None) -> tuple[Delivery, str | None] | None:
        """The next delivery and the resume token after it; None after `idle_s` seconds
        without any (for keep-alives). Raises Closed when the subscription has ended.
        (Never cancel a pending next(): time it out with `idle_s`.)"""
        if not await self._ready(idle_s):
            return None
        return self._hand(self.queue.popleft())

    async def next_batch(self, limit: int, idle_s: float | None = None) -> list[Delivery] | None:
        """Like next(), but every delivery ready (at least one, at most `limit`), for a
        transport that writes them at once and frames their tokens itself (`token_at`):
        the subscriber's place moves past the last of them."""
        if not await self._ready(idle_s):
            return None
        queue = self.queue
        batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
        for d in reversed(batch):
            if d.stored:
                self.position = d.position
                break
        return batch

    async def _ready(self, idle_s: float | None) -> bool:
        """Wait until a delivery is queued (True) or `idle_s` passed without one (False);
        replays the log first while not live. Raises Closed when the subscription has
        ended and nothing is left to hand over."""
        while True:
            if self.queue:
                return True
            if self.closed is not None:
                self.ended.set()  # (everything handed over)
                raise Closed(self.closed)
            if not self.live:
                try:
                    await self._replay_step()
                except DATABASE_ERRORS as exc:
                    # The log cannot be read right now: end here; the client resumes from
                    # the last place it got, with nothing lost.
                    log.warning("subscription ended, the event log is unreadable: %s", exc)
                    self.close("unavailable")
                continue
            if await self._sleep(idle_s):
                return False

    async def _sleep(self, idle_s: float | None) -> bool:
        """Wait for a delivery or the end; True if `idle_s` passed first."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if idle_s is not None:
            self._idle_at = loop.time() + idle_s
            timer = self._idle_timer
            if timer is not None and timer.when() > self._idle_at:  # (a shorter idle_s)
                timer.cancel()
                timer = None
            if timer is None:
                self._idle_timer = loop.call_at(self._idle_at, self._check_idle)
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._idle_at = None
        idle, self._idle = self._idle, False
        return idle and not self.queue and self.closed is None

    def token_at(self, d: Delivery) -> str:
        """The resume token at stored delivery `d`: its shared head and this
        subscriber's tail, or, at a place that could not be padded, made whole."""
        head = d.token_head()
        return head + self.token_tail if head is not None else self.token(d.position)

    def _hand(self, d: Delivery) -> tuple[Delivery, str | None]:
        if not d.stored:
            return d, None
        self.position = d.position
        return d, self.token_at(d)

    # -- catching up

    async def _replay_step(self) -> None:
        if self.cursor.g <= self.replay_upto:
            await self._replay_page()
        elif self.hub.go_live(self):
            await self._presences_since_ready()
        elif not self.hub.known.is_set():  # the hub has not listened yet
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.hub.known.wait()
        else:
            await self._next_range(self.hub.last_g)

    async def _replay_page(self) -> None:
        rows = await self.hub.read_feed(
            self.user_id, self.candidates, self.cursor, self.replay_upto, REPLAY_PAGE
        )
        head = await self.hub.head()
        if head.pruned_g >= self.cursor.g:
            self.close("resync")  # what the replay still needed was removed meanwhile
            return
        for row in rows:
            stream = Stream(StreamKind(row.kind), row.entity_id)
            visible, _ = self.follows.apply(stream, row.type, row.data)
            self.cursor = Position(row.g, row.pos)
            if visible:
                self.queue.append(Delivery(row.g, stream, row.pos, row.type, row.data))
            if self.follows.lost:
                self.close(ACCESS_LOST)  # (after the event that took the channel away)
                return
            if row.type == SESSION_REVOKED.name and row.data.get("session_id") == str(
                self.session_id
            ):
                self.close("session_revoked")  # (the hub told the live ones already)
                return
        if len(rows) < REPLAY_PAGE:
            self.cursor = Position(self.replay_upto + 1, 0)

    async def _next_range(self, upto: int) -> None:
        """The hub moved on while this replayed: replay up to where it is now."""
        changes = await self.hub.read_access_changes(self.user_id, self.cursor, upto)
        if changes is None:
            self.close("resync")
            return
        self.candidates = _ordered(self.follows.followed | self.follows.granted_by(changes))
        self.replay_upto = upto
