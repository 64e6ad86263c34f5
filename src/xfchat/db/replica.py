"""Reads that may go to a streaming standby (XFCHAT_REPLICA_URL), without a user ever
missing their own writes.

Before a read on the standby, the primary's WAL position is taken (one trivial
statement that touches no table); the standby serves the read once it has replayed up
to there, which covers every write acknowledged before the read began, the reader's
own included, whichever process took them. If it has not within XFCHAT_REPLICA_WAIT
seconds, or cannot be reached, the read goes to the primary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.db.queries.replication import get_acknowledged_lsn, get_replayed

log = logging.getLogger("xfchat.db")

POLL_S = (0.001, 0.002, 0.005, 0.01, 0.02)  # waits between looks at the standby


class ReadRouter:
    """Hands out a connection for a read that the standby may serve."""

    def __init__(self, primary: asyncpg.Pool, replica: asyncpg.Pool | None, wait_s: float):
        self.primary = primary
        self.replica = replica
        self.wait_s = wait_s
        # reads served, by where and why (for /metrics): replica, primary_lagging,
        # primary_unreachable; a primary read without a replica configured is not counted
        self.reads: dict[str, int] = {}

    def _count(self, outcome: str) -> None:
        self.reads[outcome] = self.reads.get(outcome, 0) + 1

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[asyncpg.Connection]:
        if self.replica is None:
            async with self.primary.acquire() as conn:
                yield conn
            return
        async with self.primary.acquire() as conn:
            lsn = await get_acknowledged_lsn(conn)
        outcome = "primary_lagging"
        try:
            async with self.replica.acquire() as conn:
                if await self._caught_up(conn, lsn):
                    outcome = "replica"
                    self._count(outcome)
                    yield conn
                    return
        except DATABASE_ERRORS as exc:
            if outcome == "replica":
                raise  # the read itself failed on the standby: its error is the answer
            log.warning("the replica cannot serve reads: %s", exc)
            outcome = "primary_unreachable"
        self._count(outcome)
        async with self.primary.acquire() as conn:
            yield conn

    async def _caught_up(self, conn: asyncpg.Connection, lsn: str) -> bool:
        deadline = time.monotonic() + self.wait_s
        for attempt in range(10_000):
            if await get_replayed(conn, lsn=lsn):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S[min(attempt, len(POLL_S) - 1)])
        return False
