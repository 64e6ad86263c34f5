from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from xfchat.db.queries.messages import MessageRow
from xfchat.db.queries.messages_send import SEQ_PLACEHOLDER
from xfchat.domain.events import Stream
from xfchat.domain.events import encode as encode_event
from xfchat.domain.messages import loud_mentions, mentioned_ids, message_json
from xfchat.domain.permissions import Permission
from xfchat.realtime import cursor
from xfchat.realtime.cursor import BadToken, Position, TokenCodec
from xfchat.realtime.follows import Follows
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Delivery, Subscriber


@pytest.mark.parametrize("content", ['"seq":0,', 'a "seq":0, b', '\\"seq\\":0,', "plain"])
def test_the_seq_placeholder_matches_only_the_key(content: str) -> None:
    row = MessageRow(
        uuid.uuid4(),
        uuid.uuid4(),
        0,
        uuid.uuid4(),
        "default",
        content,
        None,
        None,
        [],
        False,
        [],
        datetime.now(UTC),
        None,
        None,
        None,
    )
    body = encode_event(message_json(row, None))
    assert body.count(SEQ_PLACEHOLDER) == 1


CODEC = TokenCodec("a test secret that is long enough to be one")


@pytest.fixture(autouse=True)
def one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens compared whole are handed out in the same second (they carry it)."""
    monkeypatch.setattr(cursor, "now", lambda: 1_790_000_000)


@pytest.mark.parametrize("position", [Position(0, 0), Position(1, 7), Position(2**40, 2**33)])
def test_resume_tokens_round_trip(position: Position) -> None:
    tag = CODEC.tag(uuid.uuid4())
    assert CODEC.decode(CODEC.encode(tag, position), tag) == position


PLACES = [(0, 0), (1, 1), (127, 128), (300, 2**14), (2**40, 2**33), (5, 2**56), (2**62, 2**62)]


@pytest.mark.parametrize(("g", "pos"), PLACES)
def test_a_deliverys_token_is_the_codecs_and_decodes_to_its_place(g: int, pos: int) -> None:
    # A delivery makes its place's part once and adds each subscriber's tag to it; the
    # place is padded to whole base64 groups where its varint has room (not at 2**56).
    def subscriber() -> Subscriber:
        user = uuid.uuid4()
        hub = Hub(cast(Any, None), cast(Any, None), CODEC)
        return Subscriber(hub, user, None, Follows(user, []), CODEC.tag(user), limit=1)

    sub, other = subscriber(), subscriber()
    delivery = Delivery(g, Stream.user(uuid.uuid4()), pos, "message.created", {})
    place, token = delivery.position, sub.token_at(delivery)
    assert place == Position(g, pos)
    assert token == CODEC.encode(sub.tag, place)
    assert CODEC.decode(token, sub.tag) == place
    assert CODEC.decode(other.token_at(delivery), other.tag) == place


def test_a_token_of_an_earlier_version_without_padding_still_decodes() -> None:
    tag = CODEC.tag(uuid.uuid4())
    unpadded = "2." + base64.urlsafe_b64encode(bytes([5, 1]) + tag).decode().rstrip("=")
    assert CODEC.decode(unpadded, tag) == Position(5, 1)


def test_a_resume_token_stays_small_at_any_position() -> None:
    tag = CODEC.tag(uuid.uuid4())
    assert len(CODEC.encode(tag, Position(2**62, 2**62))) < 60


def test_a_negative_position_is_never_encoded() -> None:
    with pytest.raises(ValueError):
        CODEC.encode(CODEC.tag(uuid.uuid4()), Position(-1, 0))


def test_another_users_or_servers_token_is_refused() -> None:
    mine, theirs = CODEC.tag(uuid.uuid4()), CODEC.tag(uuid.uuid4())
    token = CODEC.encode(theirs, Position(5, 1))
    with pytest.raises(BadToken, match="another user"):
        CODEC.decode(token, mine)
    other_server = TokenCodec("another secret, of another installation entirely")
    user = uuid.uuid4()
    with pytest.raises(BadToken):
        CODEC.decode(other_server.encode(other_server.tag(user), Position(5, 1)), CODEC.tag(user))


@pytest.mark.parametrize("bad", ["", "1.AQE", "2.!!!", "2.gA", "2.AQ", "2." + "A" * 300])
def test_malformed_resume_tokens_are_refused(bad: str) -> None:
    # an old version, not base64, an unfinished varint, no tag, far too long
    with pytest.raises(BadToken):
        CODEC.decode(bad, CODEC.tag(uuid.uuid4()))


def test_mentions_are_parsed_once_each_in_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert mentioned_ids(f"<@{b}> hi <@{a}> <@{b}> <@not-a-uuid-at-all-0000000000000000>") == [b, a]


@pytest.mark.parametrize(
    ("content", "everyone"),
    [
        ("@everyone", True),
        ("hey @here, look", True),
        ("(@everyone)", True),
        ("mail me at x@everyone.io", False),
        ("@everyones", False),
        ("@here_and_there", False),
        ("a.@here", False),
        ("@@here", False),
        ("everyone", False),
    ],
)
def test_everyone_is_a_word_of_its_own(content: str, everyone: bool) -> None:
    loud = Permission.MENTION_EVERYONE
    assert loud_mentions(content, loud, {}) == (everyone, [])
    assert loud_mentions(content, Permission.SEND_MESSAGES, {}) == (False, [])


def test_roles_are_mentioned_when_mentionable_or_by_those_who_may_mention_everyone() -> None:
    open_role, closed, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    text = f"<@&{closed}> <@&{open_role}> <@&{stranger}> <@&{open_role}> <@&nope>"
    known = {open_role: True, closed: False}
    assert loud_mentions(text, Permission.SEND_MESSAGES, known) == (False, [open_role])
    assert loud_mentions(text, Permission.MENTION_EVERYONE, known) == (False, [closed, open_role])
