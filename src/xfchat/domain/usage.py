"""Per-user, per-day usage counters (requests, messages sent, bytes uploaded).

Counting a request must not cost a database write per request, so each process adds
up its counts in memory and writes them in one statement every few seconds (and on
shutdown). A crash can lose those few seconds of counts: these are statistics, not
acknowledged user data.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, date, datetime
from uuid import UUID

import asyncpg

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.db.queries import usage as q
from xfchat.tasks import stop

log = logging.getLogger("xfchat.usage")


class UsageRecorder:
    def __init__(self, pool: asyncpg.Pool, interval_s: float) -> None:
        self.pool = pool
        self.interval_s = interval_s
        # (user, day) -> [requests, messages_sent, bytes_uploaded]
        self._pending: dict[tuple[UUID, date], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def _add(self, user_id: UUID, index: int, amount: int) -> None:
        self._pending[(user_id, datetime.now(UTC).date())][index] += amount

    def count_request(self, user_id: UUID) -> None:
        self._add(user_id, 0, 1)

    def count_messages(self, user_id: UUID, n: int = 1) -> None:
        self._add(user_id, 1, n)

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, defaultdict(lambda: [0, 0, 0])
            keys = list(batch)
            try:
                async with self.pool.acquire() as conn:
                    await q.add_usage(
                        conn,
                        user_ids=[k[0] for k in keys],
                        days=[k[1] for k in keys],
                        requests=[batch[k][0] for k in keys],
                        messages_sent=[batch[k][1] for k in keys],
                        bytes_uploaded=[batch[k][2] for k in keys],
                    )
            except DATABASE_ERRORS:
                log.warning("usage flush failed; keeping the counts for the next try")
                for key, counts in batch.items():
                    for i, n in enumerate(counts):
                        self._pending[key][i] += n

    async def list_usage(self, user_id: UUID, days: int) -> list[q.UsageRow]:
        await self.flush()
        async with self.pool.acquire() as conn:
            return await q.list_usage(conn, user_id=user_id, days=days)

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                await self.flush()

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        await stop(self._task)
        await self.flush()
