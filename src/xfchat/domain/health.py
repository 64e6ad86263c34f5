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


async def check_ready(pool: asyncpg.Pool, expected: dict[int, str]) -> Readiness:
    """Ready when the database answers `SELECT 1` within 2 s and its applied migrations
    are exactly the ones this code ships (same versions, same checksums)."""
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
    if {m.version: m.checksum for m in applied} != expected:
        return Readiness(False, "the database schema does not match this code's migrations")
    return Readiness(True, "ok")


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
