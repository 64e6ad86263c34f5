from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from xfchat.db.queries.event_log import INLINE_DATA_LIMIT, notification_chunks
from xfchat.db.queries.messages import MessageRow
from xfchat.db.queries.messages_send import SEQ_PLACEHOLDER
from xfchat.domain.messages import mentioned_ids, message_json
from xfchat.realtime.cursor import BadToken, decode, encode
from xfchat.realtime.events import encode as encode_event


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
        datetime.now(UTC),
        None,
        None,
    )
    body = encode_event(message_json(row, None))
    assert body.count(SEQ_PLACEHOLDER) == 1


def test_resume_tokens_round_trip() -> None:
    positions = {1: 0, 7: 12, 300: 2**40, 2**33: 5}
    assert decode(encode(positions)) == positions
    assert decode(encode({})) == {}


@pytest.mark.parametrize("bad", ["", "2.AQE", "1.!!!", "1.gA", "1.AQ", "x" * 70000])
def test_malformed_resume_tokens_are_refused(bad: str) -> None:
    # wrong version, not base64, an unfinished varint, an odd count, far too long
    with pytest.raises(BadToken):
        decode(bad)


def test_mentions_are_parsed_once_each_in_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert mentioned_ids(f"<@{b}> hi <@{a}> <@{b}> <@not-a-uuid-at-all-0000000000000000>") == [b, a]


def test_notification_chunks_fit_and_keep_every_event_in_order() -> None:
    datas = [encode_event({"n": i, "pad": "é" * (i * 37 % 900)}) for i in range(200)]
    datas[50] = encode_event({"n": 50, "pad": "x" * 9000})  # too big for any notification
    bodies, lasts, counts = notification_chunks(["test.one"] * len(datas), datas)
    assert all(len(b.encode()) + 200 <= INLINE_DATA_LIMIT for b in bodies)
    firsts = [last - n + 1 for last, n in zip(lasts, counts, strict=True)]
    assert firsts[0] == 1 and lasts[-1] == 200
    assert all(firsts[i + 1] == lasts[i] + 1 for i in range(len(lasts) - 1))  # no gap
    empty = [i for i, body in enumerate(bodies) if body == ""]
    assert len(empty) == 1 and (lasts[empty[0]], counts[empty[0]]) == (51, 1)
    carried = [n for body in bodies if body for n in range(body.count('"test.one"'))]
    assert len(carried) == 199
