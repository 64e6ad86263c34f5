"""A subscriber's bounded queue, fed a commit at a time (Subscriber.offer_all)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest

from xfchat.api.braid import _Body
from xfchat.api.sse import frame, frames
from xfchat.api.streaming import LiveStream
from xfchat.domain.events import Stream
from xfchat.realtime import cursor
from xfchat.realtime.cursor import Position, TokenCodec
from xfchat.realtime.follows import Follows
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Delivery, Subscriber

CODEC = TokenCodec("a test secret that is long enough to be one")


@pytest.fixture(autouse=True)
def one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens compared whole are handed out in the same second (they carry it)."""
    monkeypatch.setattr(cursor, "now", lambda: 1_790_000_000)


def commit(g: int, channel: uuid.UUID, count: int) -> list[Delivery]:
    return [
        Delivery(g, Stream.channel(channel), pos, "message.created", {}) for pos in range(count)
    ]


def test_a_commit_past_the_queues_room_fills_it_and_ends_the_subscription() -> None:
    # The hub's bookkeeping only: no pool or listener is touched here.
    hub = Hub(cast(Any, None), cast(Any, None), CODEC)
    user, channel = uuid.uuid4(), uuid.uuid4()
    sub = Subscriber(hub, user, None, Follows(user, [channel]), CODEC.tag(user), limit=5)

    sub.offer_all(commit(1, channel, 3))
    assert (len(sub.queue), sub.closed) == (3, None)
    sub.offer_all(commit(2, channel, 2))  # exactly full: still open
    assert (len(sub.queue), sub.closed) == (5, None)

    sub.queue.popleft()
    sub.offer_all(commit(3, channel, 4))  # room for one of four
    assert [(d.g, d.pos) for d in sub.queue][-2:] == [(2, 1), (3, 0)]
    assert (len(sub.queue), sub.closed) == (5, "slow_consumer")
    assert hub.ended == {"slow_consumer": 1}
    assert sub.ended.is_set()

    sub.offer_all(commit(4, channel, 1))  # closed: nothing more is taken
    assert len(sub.queue) == 5


async def test_a_batch_goes_out_framed_with_each_events_token_and_moves_the_place() -> None:
    # SSE writes a batch with each event's shared frame and the subscriber's part of its
    # token: every id must be the codec's token at that event (at a place too large to
    # pad too), an ephemeral signal carries none, and the place ends at the last event.
    hub = Hub(cast(Any, None), cast(Any, None), CODEC)
    user, channel = uuid.uuid4(), uuid.uuid4()
    tag = CODEC.tag(user)
    sub = Subscriber(hub, user, None, Follows(user, [channel]), tag, limit=10)
    sub.live = True
    stream = Stream.channel(channel)
    batch = [
        Delivery(7, stream, 1, "message.created", {"n": 1}),
        Delivery(0, stream, 0, "typing.started", {"n": 2}),  # ephemeral: no place
        Delivery(8, stream, 2**56, "message.created", {"n": 3}),  # no room to pad
        Delivery(9, stream, 3, "message.created", {"n": 4}),
    ]
    sub.offer_all(batch)
    taken = await sub.next_batch(3)
    assert taken == batch[:3]
    assert sub.position == Position(8, 2**56)
    for _ in range(2):  # (the second time from what each delivery keeps framed)
        written = frames(taken, sub)
        assert written == b"".join(
            [
                b"id: " + CODEC.encode(tag, Position(7, 1)).encode() + b"\n",
                frame("message.created", b'{"n":1}'),
                frame("typing.started", b'{"n":2}'),
                b"id: " + CODEC.encode(tag, Position(8, 2**56)).encode() + b"\n",
                frame("message.created", b'{"n":3}'),
            ]
        )
    assert await sub.next_batch(3) == batch[3:]
    assert sub.position == Position(9, 3)
    assert sub.token() == CODEC.encode(tag, Position(9, 3))
    # A batch that ends with an ephemeral signal: the place is its last stored event's.
    ending = [Delivery(10, stream, 4, "message.created", {}), batch[1]]
    sub.offer_all(ending)
    assert await sub.next_batch(3) == ending
    assert sub.position == Position(10, 4)


def live_channel_subscription(hub: Hub, user: uuid.UUID, channel: uuid.UUID) -> Subscriber:
    """A one-channel subscription (a Braid one's), live on a hub with no database."""
    sub = hub.subscribe(user, None, Follows(user, [channel], only=channel))
    sub.start(Position(1, 0), 0, set())
    hub.known.set()
    assert hub.go_live(sub)
    return sub


async def test_a_one_channel_subscription_ends_where_its_channel_is_taken_away() -> None:
    """A Braid subscription (one channel) whose user leaves the group and is added back
    before its writer has taken the leaving from its queue (a chaos run found it: a
    process stalled across the two sent what was said in between). It ends at the
    removal: what came before stays queued for the writer, nothing of the channel after
    it is queued, and the grant after it does not bring the channel back."""
    hub = Hub(cast(Any, None), cast(Any, None), CODEC)
    user, channel = uuid.uuid4(), uuid.uuid4()
    sub = live_channel_subscription(hub, user, channel)
    own, room = Stream.user(user), Stream.channel(channel)
    hub._dispatch(1, room, [(1, "message.created", {"seq": 1})])
    hub._dispatch(2, own, [(1, "conversation.removed", {"id": str(channel)})])
    hub._dispatch(3, room, [(2, "message.created", {"seq": 2})])  # (said while away)
    hub._dispatch(4, own, [(2, "conversation.added", {"id": str(channel)})])
    hub._dispatch(5, room, [(3, "message.created", {"seq": 3})])
    assert [(d.g, d.type) for d in sub.queue] == [
        (1, "message.created"),
        (2, "conversation.removed"),
    ]
    assert sub.closed == "access_lost" and hub.ended == {"access_lost": 1}
    assert sub.follows.channels == set()

    # A user-wide feed follows the same changes both ways and goes on.
    feed = hub.subscribe(user, None, Follows(user, [channel]))
    feed.start(Position(6, 0), 5, set())
    assert hub.go_live(feed)
    hub._dispatch(6, own, [(3, "conversation.removed", {"id": str(channel)})])
    hub._dispatch(7, room, [(4, "message.created", {"seq": 4})])
    hub._dispatch(8, own, [(4, "conversation.added", {"id": str(channel)})])
    hub._dispatch(9, room, [(5, "message.created", {"seq": 5})])
    assert [d.g for d in feed.queue] == [6, 8, 9] and feed.closed is None


async def test_a_slow_reader_gets_all_that_came_before_its_channel_was_taken_away() -> None:
    """Was (an outside review): the close at the removal started the stream's grace for
    a writer stuck on a client that stopped reading (STALL_GRACE_S), and a client that
    read, slowly, was cut off before what was queued from before the change was written
    (and its resume is refused: a Braid-only client never got it). The subscription
    ends for its transport once that is handed over."""
    hub = Hub(cast(Any, None), cast(Any, None), CODEC)
    user, channel = uuid.uuid4(), uuid.uuid4()
    sub = live_channel_subscription(hub, user, channel)
    own, room = Stream.user(user), Stream.channel(channel)
    n = 40
    for seq in range(1, n + 1):
        hub._dispatch(seq, room, [(1, "message.created", {"id": f"m{seq}", "seq": seq})])
        hub._new_turn()
    body = _Body(cast(Any, None), cast(Any, None), channel, sub, None, None, [])
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            await asyncio.sleep(0.05)  # a client that reads, 20 updates a second: 2 s
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    stream = LiveStream(209, {}, sub, body.produce)
    task = asyncio.create_task(stream({"type": "http"}, receive, send))
    await asyncio.sleep(0.1)
    hub._dispatch(n + 1, own, [(1, "conversation.removed", {"id": str(channel)})])
    assert sub.closed == "access_lost" and not sub.ended.is_set()
    await asyncio.wait_for(task, 10)
    written = b"".join(m.get("body", b"") for m in sent)
    assert all(f'"m{seq}"'.encode() in written for seq in range(1, n + 1))
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert sub.ended.is_set()
