"""Is this process able to serve? (for /ready)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from xfchat.db.pool import PoolExhausted
from xfchat.db.queries import migrations as migrations_q
from xfchat.db.queries.locks import select_one

READY_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


async def check_ready(
    pool: asyncpg.Pool, expected: dict[int, str], listening: Callable[[], bool] | None = None
) -> Readiness:
    """Ready when the database answers `SELECT 1` within 2 s, every migration this code
    ships is applied as it ships it (same checksum), and the real-time listener is
    connected (`listening`, when given).

    Migrations newer than this code's last are no reason to be unready: during a rolling
    upgrade the first new process applies them while the old ones still serve, and a
    readiness probe failing on every old process at that instant would take them all out
    of the balancer at once. (An unknown migration below this code's last is: the
    database is of another lineage.)"""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with pool.acquire() as conn:
                await select_one(conn)
                applied = await migrations_q.list_applied_migrations(conn)
    except TimeoutError:
        return Readiness(False, f"the database did not answer within {READY_TIMEOUT_S:.0f} s")
    except PoolExhausted:
        return Readiness(False, "every database connection is busy")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return Readiness(False, f"the database is unavailable: {type(exc).__name__}")
    if not schema_serves(expected, {m.version: m.checksum for m in applied}):
        return Readiness(False, "the database schema does not match this code's migrations")
    if listening is not None and not listening():
        return Readiness(False, "the real-time listener is not connected to the database")
    return Readiness(True, "ok")


def schema_serves(expected: dict[int, str], applied: dict[int, str]) -> bool:
    """Whether a database with `applied` migrations (version -> checksum) has the schema
    this code's `expected` ones make, newer additions aside."""
    newest = max(expected, default=0)
    return all(applied.get(v) == c for v, c in expected.items()) and all(
        v in expected for v in applied if v <= newest
    )


class SharedReadiness:
    """A readiness check shared by its callers: whoever asks while one runs waits for
    that one. A flood of /ready (anyone may ask) then holds at most one database
    connection per process, however many addresses it comes from. An answer is not kept
    for later callers: only those who asked while its check ran share it."""

    def __init__(self, check: Callable[[], Awaitable[Readiness]]) -> None:
        self._check = check
        self._running: asyncio.Future[Readiness] | None = None

    async def __call__(self) -> Readiness:
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        # (shielded: a caller that goes away does not cancel the others' check)
        return await asyncio.shield(self._running)

    async def _run(self) -> Readiness:
        try:
            return await self._check()
        finally:
            self._running = None
