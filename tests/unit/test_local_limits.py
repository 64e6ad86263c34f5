"""The in-process limiter of anonymous requests (domain/local_limits.py): windows, and
a table that stays bounded however many addresses come, without one flood's network
crowding out everyone else's new clients."""

from __future__ import annotations

from xfchat.domain.local_limits import (
    OVERFLOW,
    SWEEP_EVERY_S,
    HeldPerAddress,
    LocalLimiter,
    crowd_of,
)
from xfchat.domain.rate_limits import SITE_FACTOR, Decision, address_of, proxy_test
from xfchat.settings import RateLimit

RULE = RateLimit(2, 10)


def hit(limiter: LocalLimiter, key: str, rule: RateLimit) -> Decision:
    """A hit that finds room in the table."""
    decision = limiter.hit(key, rule)
    assert decision is not None
    return decision


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_rule_per_window_and_a_new_window_after_it() -> None:
    clock = Clock()
    limiter = LocalLimiter("anonymous", clock=clock)
    rule = RateLimit(3, 60)
    decisions = [hit(limiter, "10.0.0.1", rule) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].reset_after == 60
    assert hit(limiter, "10.0.0.2", rule).allowed  # its own window
    clock.now += 30
    refused = hit(limiter, "10.0.0.1", rule)
    assert not refused.allowed and refused.reset_after == 30
    clock.now += 30
    assert hit(limiter, "10.0.0.1", rule).allowed  # the window ended


def test_a_full_table_counts_new_keys_in_their_crowd_then_in_one_overflow() -> None:
    clock = Clock()
    limiter = LocalLimiter("anonymous", max_keys=3, max_crowds=1, clock=clock)
    for key in ("a", "b", "c"):
        assert hit(limiter, key, RULE).allowed
    # Full: a new key is not counted on its own, but once in its crowd's window (16
    # times the rule), shared by the crowd's new keys.
    assert limiter.hit("d", RULE) is None and len(limiter) == 3
    crowded = [limiter.hit_crowd("flood", RULE) for _ in range(33)]
    assert [d.allowed for d in crowded] == [True] * 32 + [False]
    assert crowded[0].limit == 32 and crowded[0].remaining == 31
    # The crowds are full too: a new one goes to the overflow window.
    assert limiter.hit_crowd("elsewhere", RULE).allowed
    assert set(limiter._windows) == {"a", "b", "c", "(crowd) flood", OVERFLOW}
    assert hit(limiter, "a", RULE).allowed  # a known key keeps its own
    # Once the windows have ended, a sweep makes room again.
    clock.now += 10 + SWEEP_EVERY_S
    assert hit(limiter, "g", RULE).allowed
    assert set(limiter._windows) == {"g"}


def test_a_full_table_is_swept_at_most_once_a_second() -> None:
    clock = Clock()
    limiter = LocalLimiter("anonymous", max_keys=2, clock=clock)
    short = RateLimit(100, 1)
    limiter.hit("a", short)
    clock.now += 0.5
    limiter.hit("b", short)
    assert limiter.hit("c", short) is None  # full: swept, nothing had ended
    clock.now += 0.6  # "a" has ended, but the last sweep was 0.6 s ago
    assert limiter.hit("d", short) is None
    clock.now += SWEEP_EVERY_S
    assert limiter.hit("e", short) is not None
    assert "a" not in limiter._windows


def test_keys_and_crowds_come_from_real_addresses_only() -> None:
    assert address_of("203.0.113.7") == "203.0.113.7"
    assert address_of("overflow") is None and address_of("(overflow)") is None
    assert address_of(None) is None
    assert crowd_of("203.0.113.7") == "203.0.0.0/16"
    assert crowd_of("::ffff:203.0.113.7") == "203.0.0.0/16"
    assert crowd_of("2001:db8:1:2::1") == "2001:db8::/32"
    assert crowd_of(None) == "(unknown)"


def test_what_an_address_holds_is_capped_and_given_back() -> None:
    table = HeldPerAddress(2)
    first, second = table.take("192.0.2.1"), table.take("192.0.2.1")
    assert first is not None and second is not None
    assert table.take("192.0.2.1") is None
    assert table.take("192.0.2.2") is not None  # another address
    first.release()
    first.release()  # (once only)
    with table.take("192.0.2.1") as again:  # type: ignore[union-attr]
        assert table.take("192.0.2.1") is None
    assert again is not None and table.take("192.0.2.1") is not None


def test_an_ipv6_site_holds_its_factor_of_the_limit_and_the_table_empties() -> None:
    table = HeldPerAddress(1)
    held = [table.take(f"2001:db8:0:{n:x}::1") for n in range(SITE_FACTOR)]  # one a /64
    assert all(h is not None for h in held)
    assert table.take("2001:db8:0:1::2") is None  # its /64 holds one already
    assert table.take(f"2001:db8:0:{SITE_FACTOR:x}::1") is None  # its /48 holds 16
    assert table.take("2001:db8:1::1") is not None  # another /48
    for h in held:
        assert h is not None
        h.release()
    assert len(table) == 2  # (the other /48's two keys)


def test_a_trusted_proxy_is_known_in_either_form_of_its_address() -> None:
    """A dual-stack listener's peers are ::ffff:a.b.c.d: a proxy written as the access
    log shows it (::ffff:127.0.0.1) was capped as any client, so that all its visitors
    shared one address's connections."""
    is_proxy = proxy_test(["10.0.0.0/8", "::ffff:127.0.0.1", "fd00::/8"])
    assert [is_proxy(ip) for ip in ("10.1.2.3", "::ffff:10.1.2.3")] == [True, True]
    assert [is_proxy(ip) for ip in ("127.0.0.1", "::ffff:127.0.0.1")] == [True, True]
    assert is_proxy("fd00::1") and not is_proxy("::ffff:11.0.0.1")
    assert not any(is_proxy(ip) for ip in ("::1", "127.0.0.2", "11.0.0.1", None, "junk"))
    assert proxy_test(["*"])("198.51.100.7") and not proxy_test([])("127.0.0.1")
