"""The in-process limiter of anonymous requests (domain/local_limits.py): windows, and
a table that stays bounded however many addresses come."""

from __future__ import annotations

from xfchat.domain.local_limits import OVERFLOW, SWEEP_EVERY_S, LocalLimiter
from xfchat.settings import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_rule_per_window_and_a_new_window_after_it() -> None:
    clock = Clock()
    limiter = LocalLimiter("anonymous", RateLimit(3, 60), clock=clock)
    decisions = [limiter.hit("10.0.0.1") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].headers()["Retry-After"] == "60"
    assert limiter.hit("10.0.0.2").allowed  # another key, its own window
    clock.now += 30
    refused = limiter.hit("10.0.0.1")
    assert not refused.allowed and refused.reset_after == 30
    clock.now += 30
    assert limiter.hit("10.0.0.1").allowed  # the window ended


def test_a_full_table_counts_new_keys_under_one_shared_key_and_ended_windows_are_swept() -> None:
    clock = Clock()
    limiter = LocalLimiter("anonymous", RateLimit(2, 10), max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        assert limiter.hit(key).allowed
    # Full: the next new keys share one window (two requests), the known ones keep theirs.
    assert [limiter.hit(k).allowed for k in ("d", "e", "f")] == [True, True, False]
    assert len(limiter) == 4 and OVERFLOW in limiter._windows
    assert limiter.hit("a").allowed
    # Once the windows have ended, a sweep makes room again.
    clock.now += 10 + SWEEP_EVERY_S
    assert limiter.hit("g").allowed
    assert set(limiter._windows) == {"g"}


def test_a_full_table_is_swept_at_most_once_a_second() -> None:
    clock = Clock()
    limiter = LocalLimiter("anonymous", RateLimit(100, 1), max_keys=2, clock=clock)
    limiter.hit("a")
    clock.now += 0.5
    limiter.hit("b")
    limiter.hit("c")  # full: swept (nothing ended), counted as OVERFLOW
    clock.now += 0.6  # "a" has ended, but the last sweep was 0.6 s ago
    limiter.hit("d")
    assert "a" in limiter._windows and "d" not in limiter._windows
    clock.now += SWEEP_EVERY_S
    limiter.hit("e")
    assert "a" not in limiter._windows
