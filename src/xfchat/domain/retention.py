"""Keeping what the database holds to its retention periods: the event log, and the rows
nothing reads any more (README, "Retention")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg

from xfchat.db.queries import event_log as log_q
from xfchat.db.queries import retention as retention_q
from xfchat.settings import Settings

BATCH = 1000  # commits (rows) per statement
EVENT_BATCH = 10_000  # ... and events, at most, the commits of one statement hold
DAY_S = 86400
ANSWERED_REQUESTS_DAYS = 30  # an accepted, declined or cancelled friend request
USAGE_DAYS = 366  # the most GET /api/users/@me/usage?days= shows
log = logging.getLogger("xfchat.retention")


async def prune_event_log(pool: asyncpg.Pool, retention_days: float) -> int:
    """Delete the commits older than the retention, with their events, oldest first and
    a bounded batch per statement (BATCH commits holding at most EVENT_BATCH events,
    the oldest commit whatever it holds); resuming from before what was removed then gets a
    resync instead of a silent gap."""
    older_than_s = retention_days * DAY_S
    removed = await _in_batches(
        pool,
        lambda c: log_q.prune_commits(
            c, older_than_s=older_than_s, limit=BATCH, max_events=EVENT_BATCH
        ),
        full=1,  # (until none is left: a batch cut short by its events is no end)
    )
    if removed:
        log.info("retention removed %s commit(s) of the event log", removed)
    return removed


async def prune_rows(pool: asyncpg.Pool, settings: Settings) -> dict[str, int]:
    """Delete what no route reads any more, a batch at a time: sessions ended longer ago
    than a refresh token lives (XFCHAT_REFRESH_TOKEN_TTL_DAYS: no login's "known
    address" looks further back), answered friend requests after 30 days, usage days
    past what the usage route shows, the audit log past XFCHAT_AUDIT_RETENTION_DAYS
    (0: kept), the event streams of deleted channels and servers once their events
    are gone, mutes whose time has passed, and what names a deleted account after its
    deletion (usage counted after it, a friend request made as it committed). How many
    rows of each (a job whose statement failed, logged, is left out)."""
    ttl_s = settings.refresh_token_ttl_days * DAY_S
    jobs: dict[str, Callable[[asyncpg.Connection], Awaitable[int]]] = {
        "sessions": lambda c: retention_q.delete_ended_sessions(
            c, ended_before_s=ttl_s, limit=BATCH
        ),
        "friend_requests": lambda c: retention_q.delete_answered_friend_requests(
            c, answered_before_s=ANSWERED_REQUESTS_DAYS * DAY_S, limit=BATCH
        ),
        "usage": lambda c: retention_q.delete_usage_days(c, keep_days=USAGE_DAYS, limit=BATCH),
        "event_streams": lambda c: retention_q.delete_orphan_streams(c, limit=BATCH),
        "mutes": lambda c: retention_q.delete_ended_mutes(c, limit=BATCH),
        "deleted_accounts": lambda c: retention_q.delete_deleted_account_leftovers(c, limit=BATCH),
    }
    if settings.audit_retention_days:
        audit_s = settings.audit_retention_days * DAY_S
        jobs["audit_log"] = lambda c: retention_q.delete_audit_entries(
            c, older_than_s=audit_s, limit=BATCH
        )
    removed: dict[str, int] = {}
    for name, job in jobs.items():
        try:
            removed[name] = await _in_batches(pool, job)
        except asyncpg.PostgresError:
            # A statement of one job refused (its statement or lock timeout, a deadlock)
            # is that job's alone: the others still run (was: the rest of the run was
            # skipped, every hour, so a job that kept timing out kept the audit log,
            # last in line, for ever). Left out of the counts; tried again next run.
            log.warning("retention of %s failed this run", name, exc_info=True)
    if any(removed.values()):
        log.info("retention removed %s", ", ".join(f"{n} {k}" for k, n in removed.items() if n))
    return removed


async def _in_batches(
    pool: asyncpg.Pool, job: Callable[[asyncpg.Connection], Awaitable[int]], full: int = BATCH
) -> int:
    """Run a bounded delete until it deletes less than `full` (a batch); a connection
    per batch, so that live requests get one in between."""
    removed = 0
    while True:
        async with pool.acquire() as conn:
            n = await job(conn)
        removed += n
        if n < full:
            return removed
