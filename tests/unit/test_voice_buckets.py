"""The gateway's per-user voice rate limits (api/gateway_voice.py's UserBuckets)."""

from __future__ import annotations

import types
import uuid

import pytest

from xfchat.api import gateway_voice as gv


def test_reconnecting_gives_no_fresh_burst_until_the_buckets_refill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Was: the user's buckets went with their last connection, so closing it and
    # opening another gave a fresh burst each time (60 state updates in 8 s).
    clock = [1000.0]
    monkeypatch.setattr(gv, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    buckets = gv.UserBuckets()
    ann, ben = uuid.uuid4(), uuid.uuid4()
    signals, updates = buckets.acquire(ann)
    assert [updates.take() for _ in range(gv.STATE_BURST)] == [0.0] * gv.STATE_BURST
    assert [signals.take() for _ in range(gv.SIGNAL_BURST)] == [0.0] * gv.SIGNAL_BURST
    buckets.release(ann)
    signals, updates = buckets.acquire(ann)  # a new connection at once
    assert updates.take() > 0 and signals.take() > 0
    buckets.release(ann)
    # 4 s later the signals have refilled, the state updates have two tokens of ten.
    clock[0] += 4.0
    signals, updates = buckets.acquire(ann)
    assert [updates.take() == 0.0 for _ in range(3)] == [True, True, False]
    assert signals.take() == 0.0
    buckets.release(ann)
    # Memory stays bounded: an entry goes once its buckets would have refilled.
    buckets.acquire(ben)
    buckets.release(ben)
    assert set(buckets.released) == {ann, ben}
    clock[0] += gv.STATE_BURST / gv.STATE_PER_S
    buckets.acquire(ben)
    assert set(buckets.released) == set() and set(buckets.held) == {ben}
    _, updates = buckets.acquire(ann)  # a full burst again, after the wait
    assert [updates.take() for _ in range(gv.STATE_BURST)] == [0.0] * gv.STATE_BURST
