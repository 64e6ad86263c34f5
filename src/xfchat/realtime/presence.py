"""This process's share of presence: which users it holds connections of.

Connections open and close on the hot path, so `connected` and `disconnected` only
count in memory and mark the user; one task writes the changes (a user whose first
connection here opened, or whose last one closed) to PostgreSQL in order, retrying
while the database is away. Another touches this process's row every interval and
sweeps processes that stopped touching theirs (domain/presence.py), so a crashed
process's users go offline within timeout + interval.

Voice states are held the same way: a gateway connection that joins voice is marked
live here first (`voice_opened`); when it ends (`voice_closed`, from the hub), the
writer drops its voice state, retrying while the database is away, and every heartbeat
drops any state of this process whose connection is no longer live (domain/voice.py).
A clean stop drops them all, and the sweep of a crashed process drops its.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from uuid import UUID

import asyncpg

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.db.queries import presence as q
from xfchat.domain import presence, voice
from xfchat.tasks import stop

log = logging.getLogger("xfchat.presence")
# A voice state younger than this is never taken for an orphan (a join that began as
# the heartbeat read which connections are live).
ORPHAN_GRACE_S = 5.0
# Users whose presence changes are written in one transaction (a reconnection burst:
# their announcements go out together, one SSE write per connection that hears
# several). Few enough that the transaction holds their locks briefly (it announces
# each in turn; a status change of one of them waits for it).
PRESENCE_BATCH = 50


class PresenceTracker:
    def __init__(self, pool: asyncpg.Pool, *, interval_s: float, timeout_s: float) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.process_id = uuid.uuid4()
        self.counts: dict[UUID, int] = {}  # open connections per user, here
        self.registered: set[UUID] = set()  # users this process's row set holds
        self._dirty: set[UUID] = set()
        self.voice_live: set[UUID] = set()  # connections here that may hold a voice state
        self._voice_gone: set[UUID] = set()  # ... that ended: their states to drop
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing left to write (for tests and shutdown)
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        with contextlib.suppress(*DATABASE_ERRORS):
            async with self.pool.acquire() as conn:
                await q.touch_process(conn, process_id=self.process_id)
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="presence-writer"),
            asyncio.create_task(self._beat_forever(), name="presence-heartbeat"),
        ]

    async def stop(self, within_s: float = 3.0) -> None:
        """Forget this process's connections (their users go offline unless connected
        elsewhere), within a bound."""
        await stop(*self._tasks)
        try:
            async with asyncio.timeout(within_s), self.pool.acquire() as conn:
                await presence.leave(conn, self.process_id, self.timeout_s)
        except (TimeoutError, *DATABASE_ERRORS) as exc:
            log.warning("could not retract this process's presence (%s); it expires", exc)

    # -- on the hot path: never blocks

    def connected(self, user_id: UUID) -> None:
        self.counts[user_id] = self.counts.get(user_id, 0) + 1
        self._mark(user_id)

    def disconnected(self, user_id: UUID) -> None:
        left = self.counts.get(user_id, 0) - 1
        if left > 0:
            self.counts[user_id] = left
        else:
            self.counts.pop(user_id, None)
        self._mark(user_id)

    def _mark(self, user_id: UUID) -> None:
        self._dirty.add(user_id)
        self._idle.clear()
        self._wake.set()

    def voice_opened(self, connection_id: UUID) -> None:
        """The connection may hold a voice state from now on (call before it joins)."""
        self.voice_live.add(connection_id)

    def voice_closed(self, connection_id: UUID) -> None:
        """The connection ended: drop its voice state, if it may have held one."""
        if connection_id in self.voice_live:
            self.voice_live.discard(connection_id)
            self._voice_gone.add(connection_id)
            self._idle.clear()
            self._wake.set()

    async def settled(self, within_s: float) -> bool:
        """Whether every change so far was written (waits up to `within_s`)."""
        try:
            async with asyncio.timeout(within_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # -- writing

    async def _write_forever(self) -> None:
        delay = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            users, self._dirty = self._dirty, set()
            voices, self._voice_gone = self._voice_gone, set()
            try:
                async with self.pool.acquire() as conn:
                    while voices:  # (first: a user's call ends before they go offline)
                        connection = voices.pop()
                        try:
                            await voice.drop_connection_state(conn, connection)
                        except BaseException:
                            voices.add(connection)
                            raise
                    await self._sync_all(conn, users)
                delay = 0.1
            except DATABASE_ERRORS as exc:
                log.warning("presence not written yet: %s", exc)
                self._dirty |= users
                self._voice_gone |= voices
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._wake.set()
                continue
            except Exception:  # a bug: say so, and keep the writer alive
                log.exception("writing presence failed")
            if not self._dirty and not self._voice_gone:
                self._idle.set()

    async def _sync_all(self, conn: asyncpg.Connection, users: set[UUID]) -> None:
        """Write the changes of `users`, PRESENCE_BATCH at a time; what is written leaves
        the set, and the caller retries the rest after a pause when this raises. A batch
        the database refuses (its connection still up) is written again user by user, so
        that a user it keeps refusing holds up only themselves."""
        refused: BaseException | None = None
        order = sorted(users)
        for start in range(0, len(order), PRESENCE_BATCH):
            chunk = order[start : start + PRESENCE_BATCH]
            try:
                await self._sync(conn, chunk)
                users.difference_update(chunk)
                continue
            except Exception as exc:
                if _connection_failed(exc, conn):
                    raise
                log.warning("presence of %d users not written at once: %s", len(chunk), exc)
            for user in chunk:
                try:
                    await self._sync(conn, [user])
                except Exception as exc:
                    if _connection_failed(exc, conn):
                        raise
                    if isinstance(exc, DATABASE_ERRORS):
                        refused = exc  # (the user stays in `users`)
                        continue
                    log.exception("writing the presence of %s failed", user)  # a bug: dropped
                users.discard(user)
        if refused is not None:
            raise refused

    async def _sync(self, conn: asyncpg.Connection, users: list[UUID]) -> None:
        """Register the users who have connections here and are not registered, and
        unregister those who have none and are: each in one transaction, whose
        announcements go out together."""
        came = [u for u in users if self.counts.get(u, 0) > 0 and u not in self.registered]
        left = [u for u in users if self.counts.get(u, 0) == 0 and u in self.registered]
        if came:
            await presence.connect(conn, self.process_id, came, self.timeout_s)
            self.registered.update(came)
        if left:
            await presence.disconnect(conn, self.process_id, left, self.timeout_s)
            self.registered.difference_update(left)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._beat()
            except DATABASE_ERRORS as exc:
                log.warning("presence heartbeat failed: %s", exc)

    async def _beat(self) -> None:
        async with self.pool.acquire() as conn:
            if not await q.touch_process(conn, process_id=self.process_id):
                # Swept (this process looked dead) or the database lost its unlogged
                # tables: register every user held here again.
                log.warning(
                    "presence row was gone; registering %d users again", len(self.registered)
                )
                for user in list(self.registered):
                    self.registered.discard(user)
                    self._mark(user)
            await presence.sweep(conn, self.timeout_s, self.process_id)
            await voice.drop_orphaned_states(
                conn, self.process_id, list(self.voice_live), ORPHAN_GRACE_S
            )


def _connection_failed(exc: BaseException, conn: asyncpg.Connection) -> bool:
    """Whether `exc` is the connection failing rather than one statement."""
    if not isinstance(exc, DATABASE_ERRORS):
        return False
    return not isinstance(exc, asyncpg.PostgresError) or conn.is_closed()
