"""Limits kept in one process's memory: for what anyone may ask without a token
(`/ready`, stored images, the browser client's files, the API document), where a
counter in PostgreSQL would cost a database write per request, which is what the limit
is there to spare; and for what an address holds at once (HeldPerAddress: its open
connections, and its gateway connections waiting to identify). Like the connection
caps, they are per process: with `--workers N` a client gets N times the rule.

Fixed windows, each opened by its key's first hit, as in domain/rate_limits.py; the
keys are those of domain/rate_limits.address_checks (an IPv6 client also in its /48).

The memory is bounded. At most `max_keys` keys are tracked (ended windows are swept
when the table is full, at most once a second). A request whose key is new and finds
the table still full is counted in its crowd instead: its address's wider network (an
IPv4 /16, an IPv6 /32), once, with SITE_FACTOR times the rule. At most `max_crowds`
crowds are tracked; past them, new ones share one window, OVERFLOW. The caller checks
the widest key first and opens no narrower window for a request already refused, so a
network past its rule adds no keys (an IPv6 /48 adds at most SITE_FACTOR times the
rule's worth of /64s a window).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from xfchat.domain.rate_limits import SITE_FACTOR, Decision, address_checks
from xfchat.settings import RateLimit

MAX_KEYS = 65_536  # about 12 MiB of windows at most, crowds included
MAX_CROWDS = 4_096
CROWD_V4 = 16  # the prefix of an IPv4 client's crowd
CROWD_V6 = 32  # and of an IPv6 one's
OVERFLOW = "(overflow)"  # (parentheses: no address or network is written so)
SWEEP_EVERY_S = 1.0


def crowd_of(ip: str | None) -> str:
    """The network an address is counted in while the table is full."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return "(unknown)"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = CROWD_V4 if isinstance(address, ipaddress.IPv4Address) else CROWD_V6
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class LocalLimiter:
    def __init__(
        self,
        bucket: str,
        *,
        max_keys: int = MAX_KEYS,
        max_crowds: int = MAX_CROWDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.max_keys = max_keys
        self.max_crowds = max_crowds
        self._clock = clock
        self._windows: dict[str, list[float]] = {}  # key -> [window's end, hits, limit]
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str, rule: RateLimit) -> Decision | None:
        """Count one request of `key` under `rule` and decide it; None, counting
        nothing, when `key` is new and the table is full (count it in its crowd)."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None and len(self._windows) >= self.max_keys:
            self._sweep(now)
            if len(self._windows) >= self.max_keys:
                return None
        return self._count(key, window, rule, now)

    def hit_crowd(self, crowd: str, rule: RateLimit) -> Decision:
        """Count one request of a new key in its `crowd` (SITE_FACTOR times `rule`),
        or, when the crowds are full too, in OVERFLOW."""
        rule = RateLimit(rule.limit * SITE_FACTOR, rule.period_s)
        key = "(crowd) " + crowd
        window = self._windows.get(key)
        if window is None and len(self._windows) >= self.max_keys + self.max_crowds:
            key = OVERFLOW
            window = self._windows.get(key)
        return self._count(key, window, rule, self._clock())

    def _count(self, key: str, window: list[float] | None, rule: RateLimit, now: float) -> Decision:
        if window is None or window[0] <= now:
            window = self._windows[key] = [now + rule.period_s, 0, rule.limit]
        window[1] += 1
        hits, limit = int(window[1]), int(window[2])
        reset_after = max(0.0, window[0] - now)
        return Decision(
            allowed=hits <= limit,
            bucket=self.bucket,
            limit=limit,
            remaining=max(0, limit - hits),
            reset_at=time.time() + reset_after,
            reset_after=reset_after,
        )

    def _sweep(self, now: float) -> None:
        """Forget ended windows (a full pass, so at most once every SWEEP_EVERY_S: a
        client that keeps the table full cannot make every request pay for one)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        self._windows = {k: w for k, w in self._windows.items() if w[0] > now}


class HeldPerAddress:
    """What client addresses hold at once in this process (open connections, gateway
    connections not yet identified), at most `limit` for each: its key as for the rate
    limits (an IPv6 client's /64) and, for IPv6, its /48 at SITE_FACTOR times the limit. One entry per
    key that holds something, so the table is never larger than what is held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._held)

    def take(self, ip: str | None) -> Held | None:
        """One more for the address `ip`, or None (nothing taken) if it holds its limit."""
        checks = address_checks("held", ip, RateLimit(self.limit, 1))
        if any(self._held.get(key, 0) >= rule.limit for _, key, rule in checks):
            return None
        keys = [key for _, key, _ in checks]
        for key in keys:
            self._held[key] = self._held.get(key, 0) + 1
        return Held(self, keys)

    def _give_back(self, keys: list[str]) -> None:
        for key in keys:
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]


class Held:
    """One thing an address holds (HeldPerAddress.take); given back once, on release or
    at the end of a `with`."""

    def __init__(self, table: HeldPerAddress, keys: list[str]) -> None:
        self._table: HeldPerAddress | None = table
        self._keys = keys

    def release(self) -> None:
        if self._table is not None:
            self._table._give_back(self._keys)
            self._table = None

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
