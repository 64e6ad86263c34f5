"""Sending messages: coalesced into one transaction per channel, acknowledged after commit.

Each process has one MessageWriter. A send waits with the others of its channel; a
channel has at most one batch being written at a time, and its next batch is everything
of it that waited meanwhile, taken when a transaction is free (at most `transactions`
at once across channels, so one busy channel does not hold up the others). A batch is
written in one round trip, a statement that is its own transaction, when it can be
decided from the access facts read for the last one (domain/messages_send_fast.py), else
in four (BEGIN, two statements, COMMIT: domain/messages_send.py); whatever its size, no
send learns its result before COMMIT. A channel's batches are written in the order
their sends arrived.

Why one batch per channel: a batch holds its channel's counter row from its write to
its COMMIT, so a second batch of the channel in flight would only wait for that lock,
having been formed too early to carry what arrived while it waited (bench/README.md,
"Issue 14": measured, one at a time carries larger batches and more messages/s).

Bounds: at most `queue_limit` sends are accepted and not yet answered (more get 503
SEND_QUEUE_FULL with Retry-After); every send is answered within `deadline_s` (a send still queued then is
dropped and gets 503 SEND_TIMEOUT; one whose batch is already writing gets the same
answer, and a retry with the same message id or nonce then tells what happened); on
shutdown new sends get 503 SHUTTING_DOWN while those queued and in flight are written,
for at most `drain_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import asyncpg

from xfchat.domain.messages import check_content
from xfchat.domain.messages_batch import SendRequest, SendResult, check_nonce
from xfchat.domain.messages_send import StaleBatch, write_batch
from xfchat.domain.messages_send_fast import FactsCache, eligible, write_batch_fast
from xfchat.errors import ServiceUnavailable, XFChatError
from xfchat.tasks import stop

log = logging.getLogger("xfchat.send")

RETRIES = 3
FILE_SENDS_USER = 2  # one author's sends with files under way at once, per process
# A batch that meets one of these wrote nothing, and its next attempt sees why: retried.
RETRIED = (
    StaleBatch,
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


def _unread(future: asyncio.Future[SendResult]) -> None:
    if not future.cancelled():
        future.exception()  # (retrieved: asyncio logs an exception nobody retrieved)


def _unavailable(message: str, code: str) -> ServiceUnavailable:
    return ServiceUnavailable(message, code=code, retry_after=1)


def channel_busy() -> ServiceUnavailable:
    return _unavailable("the channel is too busy right now; retry", "CHANNEL_BUSY")


def _shutting_down() -> ServiceUnavailable:
    return _unavailable("the server is shutting down; retry", "SHUTTING_DOWN")


def _maybe_stored() -> ServiceUnavailable:
    return _unavailable(
        "the message took too long to write and may or may not be stored: "
        "send it again with the same id (or nonce) to find out",
        "SEND_TIMEOUT",
    )


class MessageWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        transactions: int = 8,
        max_batch: int = 256,
        queue_limit: int = 10_000,
        deadline_s: float = 10.0,
        file_sends: int = 16,
        on_sent: Callable[[UUID, int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.file_sends = file_sends  # sends with files under way at once, all authors
        self.max_batch = max_batch
        self.queue_limit = queue_limit
        self.deadline_s = deadline_s
        self.on_sent = on_sent
        self.batches = 0  # transactions written (for /metrics)
        self.sends = 0  # sends they carried
        self.writing_s = 0.0  # seconds their writes took, sent to answered (wall time)
        self.refused = 0  # sends refused for a full queue, a deadline or shutdown
        self.pending = 0  # sends accepted whose batch has not answered them yet
        self.accepting = True
        self._waiting: dict[UUID, list[SendRequest]] = {}  # channel -> sends in no batch yet
        self._channels: dict[UUID, asyncio.Task[None]] = {}  # channel -> its writing task
        # At most half the pool (the routes need connections too), shared by the batches
        # and the transactions that store files (each holds its connection for a whole
        # COPY of up to 80 MiB): a quarter of that half for those.
        half = max(1, pool.get_max_size() // 2)
        self.file_transactions = max(1, half // 4)
        self.transactions = max(1, min(transactions, half - self.file_transactions))
        self._free = asyncio.Semaphore(self.transactions)
        self._storing = asyncio.Semaphore(self.file_transactions)
        self._file_sends: dict[UUID, int] = {}  # author -> their sends with files under way
        self._queued = 0  # channels waiting for a free transaction
        self._unanswered: set[asyncio.Future[SendResult]] = set()
        self._drained = asyncio.Event()  # set whenever no send is pending
        self._drained.set()
        self.facts = FactsCache()  # what the fast path decides from

    async def stop(self, drain_s: float = 5.0) -> None:
        """Refuse new sends, write those queued and in flight (for at most `drain_s`),
        then stop; any send still unwritten gets 503 SHUTTING_DOWN."""
        self.accepting = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                await self._drained.wait()
                # (a batch whose sends were all answered at their deadline is still
                # writing: in flight, given its time as any)
                if self._channels:
                    await asyncio.wait(list(self._channels.values()))
        await stop(*self._channels.values())
        gone = _shutting_down()
        for future in list(self._unanswered):
            if not future.done():
                future.add_done_callback(_unread)  # (whoever still waits reads it)
                future.set_exception(gone)

    async def send(self, req: SendRequest) -> SendResult:
        """Queue a send and wait until it is committed (or refused), at most the deadline.

        Raises: the XFChatError that refused it (503 SEND_QUEUE_FULL, SEND_TIMEOUT,
        SHUTTING_DOWN among them), or the database error that failed it."""
        check_content(req.content)
        check_nonce(req.nonce)
        if not self.accepting:
            self.refused += 1
            raise _shutting_down()
        if self.pending >= self.queue_limit:
            self.refused += 1
            raise _unavailable(
                "too many messages are waiting to be written; retry", "SEND_QUEUE_FULL"
            )
        loop = asyncio.get_running_loop()
        req.future = future = loop.create_future()
        req.deadline = loop.time() + self.deadline_s
        self.pending += 1
        self._drained.clear()
        self._unanswered.add(future)
        future.add_done_callback(self._answered)
        self._waiting.setdefault(req.channel_id, []).append(req)
        if req.channel_id not in self._channels:
            self._channels[req.channel_id] = asyncio.create_task(
                self._write_channel(req.channel_id), name="message-writer"
            )
        expiry = loop.call_at(req.deadline, self._expire, req)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Whoever waited is gone. The send is still answered, by its batch or at its
            # deadline, so that it stops counting as pending; nobody reads the answer.
            future.add_done_callback(_unread)
            raise
        finally:
            if future.done():
                expiry.cancel()

    def _expire(self, req: SendRequest) -> None:
        """A send not answered by its deadline: refused, and its batch's answer, if it
        comes, goes to no one (a send not yet in a batch is not written)."""
        if req.future.done():
            return
        self.refused += 1
        if req.started:
            req.future.set_exception(_maybe_stored())
        else:
            req.future.set_exception(
                _unavailable(
                    "the message could not be written in time (nothing was stored); retry",
                    "SEND_TIMEOUT",
                )
            )

    async def write_beside(
        self, author_id: UUID | None, write: Callable[[], Awaitable[SendResult]]
    ) -> SendResult:
        """A send written outside the queues (one with files, a transaction of its own),
        under the rules every send keeps: refused while the server stops, answered
        within the deadline, counted in its author's usage once written.

        Raises: ServiceUnavailable (SHUTTING_DOWN, SEND_TIMEOUT), or what `work` raises."""
        if not self.accepting:
            self.refused += 1
            raise _shutting_down()
        try:
            async with asyncio.timeout(self.deadline_s):
                result = await write()
        except TimeoutError:
            self.refused += 1
            raise _maybe_stored() from None
        if result.created and self.on_sent is not None and author_id is not None:
            self.on_sent(author_id, 1)  # (None: a webhook's, which no user's usage counts)
        return result

    @contextlib.asynccontextmanager
    async def sending_files(self, author_id: UUID) -> AsyncIterator[None]:
        """One of the author's sends with files, from before its body is read until it
        is answered: at most FILE_SENDS_USER of one author's at once per process, and
        `file_sends` of everyone's (each holds up to ten spooled files meanwhile).

        Raises: ServiceUnavailable (FILES_BUSY, with Retry-After)."""
        if sum(self._file_sends.values()) >= self.file_sends:
            self.refused += 1
            raise _unavailable(
                "this server is taking as many messages with files as it can; retry soon",
                "FILES_BUSY",
            )
        under_way = self._file_sends.get(author_id, 0)
        if under_way >= FILE_SENDS_USER:
            self.refused += 1
            raise _unavailable(
                f"you are sending {under_way} messages with files already; retry when one is done",
                "FILES_BUSY",
            )
        self._file_sends[author_id] = under_way + 1
        try:
            yield
        finally:
            left = self._file_sends[author_id] - 1
            if left:
                self._file_sends[author_id] = left
            else:
                del self._file_sends[author_id]

    def storing(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A turn for a transaction that stores files: `file_transactions` at once per
        process; the others wait (within their send's deadline)."""
        return self._storing

    async def _write_channel(self, channel_id: UUID) -> None:
        """Write the channel's waiting sends, a batch at a time, until none waits."""
        try:
            while self._waiting.get(channel_id):
                self._queued += 1
                try:
                    await self._free.acquire()
                finally:
                    self._queued -= 1
                try:
                    await self._write_held(channel_id)
                finally:
                    self._free.release()
        finally:
            del self._channels[channel_id]

    async def _write_held(self, channel_id: UUID) -> None:
        """Batch after batch of the channel on one connection, while sends of it wait, no
        other channel waits for a transaction and the pool has a connection to spare
        (each acquire and release of a pool connection costs a turn of the event loop,
        which a busy process makes long)."""
        try:
            async with contextlib.AsyncExitStack() as held:
                try:
                    conn = await held.enter_async_context(self.pool.acquire())
                except Exception as exc:  # no connection (a full pool, the database gone)
                    self._fail(self._take(channel_id), exc)
                    return
                while True:
                    reqs = self._take(channel_id)
                    if reqs and not await self._write(conn, channel_id, reqs):
                        return
                    if not self._waiting.get(channel_id) or (reqs and not self._may_hold()):
                        return
        except Exception as exc:  # (giving the connection back failed; the next takes another)
            log.warning("a message writer's connection failed: %s", exc)

    def _may_hold(self) -> bool:
        pool = self.pool
        spare = pool.get_idle_size() > 0 or pool.get_size() < pool.get_max_size()
        return spare and not self._queued

    def _take(self, channel_id: UUID) -> list[SendRequest]:
        """The next batch of the channel: what waits and is still wanted (at most
        max_batch, oldest first), each marked started."""
        now = asyncio.get_running_loop().time()
        live = [
            r for r in self._waiting.pop(channel_id, []) if not r.future.done() and r.deadline > now
        ]
        if len(live) > self.max_batch:
            self._waiting[channel_id] = live[self.max_batch :]
            live = live[: self.max_batch]
        for r in live:
            r.started = True
        return live

    def _answered(self, future: asyncio.Future[SendResult]) -> None:
        self._unanswered.discard(future)
        self.pending -= 1
        if not self.pending:
            self._drained.set()

    async def _write_once(
        self, conn: asyncpg.Connection, channel_id: UUID, reqs: list[SendRequest], first: bool
    ) -> list[SendResult | XFChatError]:
        """The batch in one statement when it may take the fast path (a first attempt
        only), else, or when that path declines (having written nothing), checked in a
        transaction."""
        if first and eligible(reqs):
            written = await write_batch_fast(conn, channel_id, reqs, self.facts)
            if written is not None:
                return written
        async with conn.transaction():
            return await write_batch(conn, channel_id, reqs, self.facts.remember)

    async def _write(
        self, conn: asyncpg.Connection, channel_id: UUID, reqs: list[SendRequest]
    ) -> bool:
        """Write the batch (not empty) and answer its sends; False when the connection
        failed."""
        self.batches += 1
        self.sends += len(reqs)
        loop = asyncio.get_running_loop()
        for attempt in range(1, RETRIES + 1):
            began = loop.time()
            try:
                outcomes = await self._write_once(conn, channel_id, reqs, attempt == 1)
                break  # committed
            except RETRIED:
                # Another process inserted one of these ids (or nonces) meanwhile, or who
                # may see the channel changed: the next attempt's check sees it and
                # answers accordingly.
                if attempt == RETRIES:
                    self._fail(reqs, channel_busy())
                    return True
            except Exception as exc:  # the database is gone, a timeout: nothing was written
                self._fail(reqs, exc)
                return False
            finally:
                self.writing_s += loop.time() - began
        created: dict[UUID, int] = {}
        for req, outcome in zip(reqs, outcomes, strict=True):
            answered = req.future.done()  # (its deadline passed: its sender was told so)
            if isinstance(outcome, XFChatError):
                if not answered:
                    req.future.set_exception(outcome)
                continue
            if not answered:
                req.future.set_result(outcome)
            if outcome.created:
                created[req.actor.user_id] = created.get(req.actor.user_id, 0) + 1
        if self.on_sent is not None:
            for user_id, n in created.items():
                self.on_sent(user_id, n)
        return True

    @staticmethod
    def _fail(reqs: list[SendRequest], exc: BaseException) -> None:
        if not isinstance(exc, XFChatError):
            log.warning("a batch of %d sends failed: %s", len(reqs), exc)
        for req in reqs:
            if not req.future.done():
                req.future.set_exception(exc)
