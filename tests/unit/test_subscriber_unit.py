"""A subscriber's bounded queue, fed a commit at a time (Subscriber.offer_all)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from xfchat.domain.events import Stream
from xfchat.realtime.cursor import TokenCodec
from xfchat.realtime.follows import Follows
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Delivery, Subscriber

CODEC = TokenCodec("a test secret that is long enough to be one")


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
