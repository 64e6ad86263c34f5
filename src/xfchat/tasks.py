"""Background tasks of a running server: started with the app, stopped within a bound.

Stopping never waits forever: on Python 3.11 `asyncio.wait_for` can swallow a
cancellation in a narrow race, and a shutdown that awaits such a task would hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from xfchat.db.queries import periodic as periodic_q

log = logging.getLogger("xfchat.tasks")
STOP_WITHIN_S = 5.0


def every(
    seconds: float, job: Callable[[], Awaitable[Any]], name: str, pool: asyncpg.Pool
) -> asyncio.Task[None]:
    """Run `job` every `seconds` until cancelled; a failure is logged, not fatal. The
    period is the cluster's (periodic_runs, migration 0046, on `pool`): a process that
    starts again goes on where the last run left off, and of several processes one runs
    each period."""

    async def loop() -> None:
        while True:
            try:
                async with pool.acquire() as conn:
                    claim = await periodic_q.claim_run(conn, name=name, period_s=seconds)
            except Exception:  # (the database away: try again a period on)
                log.warning("periodic job %s not claimed", name, exc_info=True)
                await asyncio.sleep(seconds)
                continue
            if not claim.claimed:
                await asyncio.sleep(min(seconds, max(1.0, claim.due_in_s)))
                continue
            try:
                await job()
            except Exception:
                log.warning("periodic job %s failed", name, exc_info=True)

    return asyncio.create_task(loop(), name=name)


async def stop(*tasks: asyncio.Task[Any] | None, within_s: float = STOP_WITHIN_S) -> None:
    """Cancel the tasks and wait for them to end, at most `within_s` seconds. How each
    ended is the caller's to look at before: here an exception is only retrieved (at
    debug level in the log), of a task that had ended already, one that raised instead
    of stopping, and one that ends later; else asyncio logs each as an ERROR, "Task
    exception was never retrieved" (two tasks of a gateway connection that both saw the
    client go, one raised to the caller, did so dozens of times a minute)."""
    given = [t for t in tasks if t is not None]
    for task in given:
        task.add_done_callback(_retrieve)  # (at once, for one that has ended)
    pending = [t for t in given if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, late = await asyncio.wait(pending, timeout=within_s)
        for task in late:
            log.warning("task %s did not stop within %.0f s", task.get_name(), within_s)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("task %s ended with %r", task.get_name(), exc)
