"""Background tasks of a running server: started with the app, stopped within a bound.

Stopping never waits forever: on Python 3.11 `asyncio.wait_for` can swallow a
cancellation in a narrow race, and a shutdown that awaits such a task would hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("xfchat.tasks")
STOP_WITHIN_S = 5.0


def every(seconds: float, job: Callable[[], Awaitable[Any]], name: str) -> asyncio.Task[None]:
    """Run `job` every `seconds` until cancelled; a failure is logged, not fatal."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.warning("periodic job %s failed", name, exc_info=True)

    return asyncio.create_task(loop(), name=name)


async def stop(*tasks: asyncio.Task[Any] | None, within_s: float = STOP_WITHIN_S) -> None:
    """Cancel the tasks and wait for them to end, at most `within_s` seconds."""
    pending = [t for t in tasks if t is not None and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, late = await asyncio.wait(pending, timeout=within_s)
        for task in late:
            log.warning("task %s did not stop within %.0f s", task.get_name(), within_s)
