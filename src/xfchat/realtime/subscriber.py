"""What one connection receives: a subscriber's inbox, cursors and resume token.

A subscriber keeps, per stream it follows, the last position it handed on. An event at
exactly the next position goes straight through; an older one is a duplicate and is
dropped; a newer one means something was missed (a notification without its events, a
listener reconnect, a resume) and the gap is read from the log first. So delivery is in
order, gap-free and duplicate-free per stream, whatever the notifications do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.realtime.cursor import encode
from xfchat.realtime.events import Stream

if TYPE_CHECKING:
    from xfchat.realtime.hub import Hub

log = logging.getLogger("xfchat.hub")

CATCH_UP_PAGE = 500


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
class Hint:
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


Item = Delivery | Hint | _CatchUp | _Follow
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
        elif isinstance(item, Hint):
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
