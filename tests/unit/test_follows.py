"""What a connection follows, event by event (live delivery and resumes share it)."""

from __future__ import annotations

import uuid

from xfchat.domain.events import AccessChange, Stream
from xfchat.realtime.follows import Follows

ME = uuid.uuid4()
A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
MINE = Stream.user(ME)


def test_a_channel_is_seen_only_while_followed() -> None:
    f = Follows(ME, [A])
    assert f.apply(Stream.channel(A), "message.created", {}) == (True, [])
    assert f.apply(Stream.channel(B), "message.created", {}) == (False, [])
    assert f.apply(Stream.user(uuid.uuid4()), "user.updated", {}) == (False, [])
    assert f.apply(MINE, "user.updated", {}) == (True, [])


def test_grants_and_revokes_take_effect_at_their_own_event() -> None:
    f = Follows(ME, [A])
    assert f.apply(MINE, "conversation.added", {"id": str(B)}) == (
        True,
        [(AccessChange.GRANT, Stream.channel(B))],
    )
    assert f.apply(Stream.channel(B), "participant.added", {}) == (True, [])
    assert f.apply(MINE, "conversation.removed", {"id": str(A)}) == (
        True,
        [(AccessChange.REVOKE, Stream.channel(A))],
    )
    assert f.apply(Stream.channel(A), "participant.removed", {}) == (False, [])
    # A change that changes nothing is not reported again.
    assert f.apply(MINE, "conversation.created", {"id": str(B)}) == (True, [])
    assert f.apply(MINE, "conversation.removed", {"id": str(A)}) == (True, [])


def test_a_malformed_access_event_changes_nothing() -> None:
    f = Follows(ME, [A])
    for data in ({}, {"id": "not a uuid"}, "not a dict", None):
        assert f.apply(MINE, "conversation.removed", data) == (True, [])
    assert f.channels == {A}


def test_rewinding_restores_what_was_followed_before_the_changes() -> None:
    # Now: in A and C. Since the resume position: left B, joined C, left A, rejoined A.
    changes = [
        ("conversation.removed", {"id": str(B)}),
        ("conversation.added", {"id": str(C)}),
        ("conversation.removed", {"id": str(A)}),
        ("conversation.added", {"id": str(A)}),
        ("friend.added", {"user_id": str(uuid.uuid4())}),
    ]
    f = Follows(ME, [A, C])
    granted = f.rewind(changes)
    assert f.channels == {A, B} and granted == {Stream.channel(A), Stream.channel(C)}
    # Replaying the same changes forward leads back to now, passing through each state.
    seen = []
    for event_type, data in changes:
        f.apply(MINE, event_type, data)
        seen.append(set(f.channels))
    assert seen == [{A}, {A, C}, {C}, {A, C}, {A, C}]


def test_a_single_channel_follow_ignores_every_other_channel() -> None:
    f = Follows(ME, [A, B], only=A)
    assert f.channels == {A}
    assert f.apply(MINE, "conversation.added", {"id": str(C)}) == (True, [])
    assert f.channels == {A}
    assert f.granted_by([("conversation.added", {"id": str(C)})]) == set()
    assert f.apply(MINE, "conversation.removed", {"id": str(A)})[1] == [
        (AccessChange.REVOKE, Stream.channel(A))
    ]
    assert f.channels == set()


def test_losing_a_channels_history_ends_only_a_subscription_to_that_history() -> None:
    lost = {"server_id": str(C), "reason": "permissions", "channel_ids": [str(A)]}
    feed = Follows(ME, [A, B])
    assert feed.apply(MINE, "channel.history_hidden", lost) == (True, [])
    assert feed.channels == {A, B}  # live events follow VIEW_CHANNEL
    assert feed.rewind([("channel.history_hidden", lost)]) == set() and feed.channels == {A, B}
    braid = Follows(ME, [A], only=A)
    assert braid.apply(MINE, "channel.history_hidden", lost) == (
        True,
        [(AccessChange.REVOKE, Stream.channel(A))],
    )
    assert braid.channels == set()
    other = Follows(ME, [B], only=B)
    assert other.apply(MINE, "channel.history_hidden", lost) == (True, [])
    assert other.channels == {B}
