"""Limits kept in one process's memory: for what anyone may ask without a token
(`/health`, `/ready`, stored images, the browser client's files, the API document),
where a counter in PostgreSQL would cost a database write per request, which is what
the limit is there to spare. Like the connection caps, they are per process: with
`--workers N` a client gets N times the rule.

Fixed windows, each opened by its key's first hit, as in domain/rate_limits.py. The
memory is bounded: at most `max_keys` keys are tracked; a new key that finds the table
full (once ended windows are swept, at most once a second) is counted under one shared
key, OVERFLOW, so a flood from more addresses than that shares one window instead of
growing the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from xfchat.domain.rate_limits import Decision
from xfchat.settings import RateLimit

MAX_KEYS = 65_536  # about 10 MiB of windows at most
OVERFLOW = "overflow"
SWEEP_EVERY_S = 1.0


class LocalLimiter:
    def __init__(
        self,
        bucket: str,
        rule: RateLimit,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.rule = rule
        self.max_keys = max_keys
        self._clock = clock
        self._windows: dict[str, list[float]] = {}  # key -> [window's end, hits]
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str) -> Decision:
        """Count one request of `key` and decide it."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None and len(self._windows) >= self.max_keys:
            self._sweep(now)
            if len(self._windows) >= self.max_keys:
                key = OVERFLOW
                window = self._windows.get(key)
        if window is None or window[0] <= now:
            window = self._windows[key] = [now + self.rule.period_s, 0]
        window[1] += 1
        hits = int(window[1])
        reset_after = max(0.0, window[0] - now)
        return Decision(
            allowed=hits <= self.rule.limit,
            bucket=self.bucket,
            limit=self.rule.limit,
            remaining=max(0, self.rule.limit - hits),
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
