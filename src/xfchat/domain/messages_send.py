"""Sending messages: coalesced into one transaction per channel, acknowledged after commit.

Each process has one MessageWriter. A send waits in the queue of the worker that owns
its channel (channels are spread over a few workers by hash, so one busy conversation
does not hold up the others). A worker takes everything waiting, and for each channel
runs one transaction of two statements: the first share-locks the conversation's row,
checks access, replies and mentions for the whole batch, finds earlier sends with the
same ids or nonces, and counts every send in its rate-limit buckets; the second takes
the next sequence numbers, inserts the new messages and appends their `message.created`
events with their notifications (re-checking participants with its own snapshot). Only
after COMMIT does any send learn its result, so "acknowledged" always means "durable".
A send therefore costs no database round trip of its own: a batch costs four (BEGIN, two
statements, COMMIT), whatever its size. Two batches of a queue may be in flight at once;
sends that are in flight together have no order between them (a client that needs its
messages in order sends each after the previous one is acknowledged).

Idempotency: a PUT names its message id; the same id with the same author, channel,
text and reply again returns the stored message (200, nothing broadcast); anything else
under that id is 409. A POST may carry a nonce: the same author's nonce in the same
channel returns the stored message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages as q
from xfchat.db.queries import messages_send as send_q
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import not_found
from xfchat.domain.messages import check_content, mentioned_ids, message_json, view_json
from xfchat.domain.rate_limits import Decision, bucket_key, decide
from xfchat.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    ServiceUnavailable,
    XFChatError,
)
from xfchat.realtime.events import append_messages
from xfchat.settings import RateLimit
from xfchat.tasks import stop

log = logging.getLogger("xfchat.send")

RETRIES = 3
IN_FLIGHT = 2  # batch transactions per writer queue at once


@dataclass
class SendRequest:
    actor: Actor
    author: dict[str, Any]  # the author's public fields, as messages show them
    channel_id: UUID
    message_id: UUID
    content: str
    client_chose_id: bool  # PUT: the id is the client's, and idempotency goes by it
    nonce: str | None = None
    reply_to_id: UUID | None = None
    # Rate-limit buckets this send counts in: (bucket, key, rule). They are counted in
    # the batch's own transaction, so a send costs no round trip of its own.
    limits: list[tuple[str, str, RateLimit]] = field(default_factory=list)
    future: asyncio.Future[SendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class SendResult:
    message: dict[str, Any]
    created: bool  # False: an idempotent repeat that returned the stored message
    decisions: list[Decision] = field(default_factory=list)


def _same_send(req: SendRequest, old: dict[str, Any]) -> bool:
    return bool(
        old["channel_id"] == str(req.channel_id)
        and old["author_id"] == str(req.actor.user_id)
        and old["content"] == req.content
        and old["reply_to_id"] == (str(req.reply_to_id) if req.reply_to_id else None)
    )


def _conflict(message_id: UUID) -> Conflict:
    return Conflict(
        f"message {message_id} already exists with another body", code="MESSAGE_ID_CONFLICT"
    )


class StaleBatch(Exception):
    """What the batch's first statement saw changed before its second ran: retry it."""


class _Buckets:
    """The batch's rate-limit buckets: each counted once, with every request's hit
    number within it, so each request gets its own decision."""

    def __init__(self, reqs: list[SendRequest]) -> None:
        self.rules: dict[str, tuple[str, RateLimit]] = {}
        self.counts: dict[str, int] = {}
        self.hit_of: list[list[tuple[str, int]]] = []
        for req in reqs:
            mine = []
            for bucket, key, rule in req.limits:
                stored = bucket_key(bucket, key)
                self.rules[stored] = (bucket, rule)
                self.counts[stored] = self.counts.get(stored, 0) + 1
                mine.append((stored, self.counts[stored]))
            self.hit_of.append(mine)
        self.order = sorted(self.counts)

    def decisions(self, state: send_q.SendBatchState) -> list[list[Decision]]:
        final = dict(zip(self.order, state.bucket_hits, strict=True))
        ends = dict(zip(self.order, state.bucket_ends, strict=True))
        return [
            [
                decide(
                    self.rules[b][0],
                    self.rules[b][1],
                    final[b] - self.counts[b] + k,
                    ends[b],
                    state.now,
                )
                for b, k in mine
            ]
            for mine in self.hit_of
        ]


async def write_batch(
    conn: asyncpg.Connection, channel_id: UUID, reqs: list[SendRequest]
) -> list[SendResult | XFChatError]:
    """Write one channel's batch in the caller's transaction (two statements); one
    outcome per request."""
    mentions = {id(r): mentioned_ids(r.content) for r in reqs}
    buckets = _Buckets(reqs)
    with_nonce = [r for r in reqs if r.nonce]
    state = await send_q.prepare_send_batch(
        conn,
        channel_id=channel_id,
        authors=list({r.actor.user_id for r in reqs}),
        reply_ids=list({r.reply_to_id for r in reqs if r.reply_to_id}),
        mentioned=list({u for m in mentions.values() for u in m}),
        ids=[r.message_id for r in reqs if r.client_chose_id],
        nonce_authors=[r.actor.user_id for r in with_nonce],
        nonces=[r.nonce for r in with_nonce if r.nonce],
        buckets=buckets.order,
        periods=[buckets.rules[b][1].period_s for b in buckets.order],
        counts=[buckets.counts[b] for b in buckets.order],
    )
    if state is None:
        return [not_found() for _ in reqs]
    decisions = buckets.decisions(state)
    outcomes, repeats, inserting = _sort_out(reqs, state, decisions)
    bodies: dict[str, dict[str, Any]] = {}
    if inserting:
        mentionable = set(state.mentionable)
        new = [(reqs[i], [u for u in mentions[id(reqs[i])] if u in mentionable]) for i in inserting]
        bodies = await _insert(conn, channel_id, state.now, new)
        for i in inserting:
            outcomes[i] = SendResult(bodies[str(reqs[i].message_id)], True, decisions[i])
    stored = [mid for mid in repeats.values() if mid not in bodies]
    views = (
        {
            str(v.id): view_json(v)
            for v in await q.list_message_views(conn, viewer=None, ids=[UUID(m) for m in stored])
        }
        if stored
        else {}
    )
    for i, mid in repeats.items():
        outcomes[i] = SendResult(bodies.get(mid) or views[mid], False, decisions[i])
    return [o for o in outcomes if o is not None]


def _sort_out(
    reqs: list[SendRequest], state: send_q.SendBatchState, decisions: list[list[Decision]]
) -> tuple[list[SendResult | XFChatError | None], dict[int, str], list[int]]:
    """Each request's fate: refused (its error in the outcomes), a repeat of a stored or
    batch-mate message (request index -> that message's id), or to insert (its index)."""
    by_id = {e["id"]: e for e in state.existing}
    by_nonce = {(e["author_id"], e["nonce"]): e for e in state.existing if e["nonce"]}
    allowed, replyable = set(state.allowed), set(state.replyable)
    outcomes: list[SendResult | XFChatError | None] = [None] * len(reqs)
    repeats: dict[int, str] = {}
    inserting: list[int] = []
    claimed: dict[UUID, int] = {}  # message id -> the request of this batch inserting it
    claimed_nonce: dict[tuple[UUID, str], int] = {}  # (author, nonce) -> likewise
    for i, r in enumerate(reqs):
        denied = next((d for d in decisions[i] if not d.allowed), None)
        old = by_id.get(str(r.message_id)) if r.client_chose_id else None
        if r.actor.user_id not in allowed:
            outcomes[i] = not_found()
        elif state.blocked:
            outcomes[i] = Forbidden("you cannot message this user", code="CANNOT_MESSAGE_USER")
        elif denied is not None:
            outcomes[i] = denied.refusal()
        elif old is not None:
            if _same_send(r, old):
                repeats[i] = old["id"]
            else:
                outcomes[i] = _conflict(r.message_id)
        elif r.nonce and (str(r.actor.user_id), r.nonce) in by_nonce:
            repeats[i] = by_nonce[(str(r.actor.user_id), r.nonce)]["id"]
        elif r.reply_to_id and r.reply_to_id not in replyable:
            outcomes[i] = BadRequest(
                "reply_to_id is not a message of this conversation",
                code="INVALID_REPLY",
                field="reply_to_id",
            )
        elif r.nonce and (r.actor.user_id, r.nonce) in claimed_nonce:  # a nonce twice
            repeats[i] = str(reqs[claimed_nonce[(r.actor.user_id, r.nonce)]].message_id)
        elif r.message_id in claimed:  # the same id twice in one batch
            first = reqs[claimed[r.message_id]]
            same = (first.actor.user_id, first.content, first.reply_to_id) == (
                r.actor.user_id,
                r.content,
                r.reply_to_id,
            )
            if same:
                repeats[i] = str(r.message_id)
            else:
                outcomes[i] = _conflict(r.message_id)
        else:
            claimed[r.message_id] = i
            if r.nonce:
                claimed_nonce[(r.actor.user_id, r.nonce)] = i
            inserting.append(i)
    return outcomes, repeats, inserting


async def _insert(
    conn: asyncpg.Connection,
    channel_id: UUID,
    now: datetime,
    new: list[tuple[SendRequest, list[UUID]]],
) -> dict[str, dict[str, Any]]:
    """Insert these sends (each with the users it mentions) and their events; their
    bodies by message id. Raises StaleBatch if the participants changed meanwhile."""
    rows = [
        q.MessageRow(
            id=r.message_id,
            channel_id=channel_id,
            seq=0,
            author_id=r.actor.user_id,
            kind="default",
            content=r.content,
            nonce=r.nonce,
            reply_to_id=r.reply_to_id,
            mentions=mentioned,
            mention_everyone=False,
            created_at=now,
            edited_at=None,
            deleted_at=None,
        )
        for r, mentioned in new
    ]
    bodies = [message_json(row, r.author) for row, (r, _) in zip(rows, new, strict=True)]
    last = await append_messages(  # each body has "seq": 0 until this fills it in
        conn,
        channel_id=channel_id,
        created_at=now,
        ids=[row.id for row in rows],
        author_ids=[r.actor.user_id for r, _ in new],
        contents=[row.content for row in rows],
        nonces=[row.nonce for row in rows],
        reply_to_ids=[row.reply_to_id for row in rows],
        mentions=[row.mentions for row in rows],
        bodies=bodies,
    )
    if last is None:  # a participant left or a block came between the two statements
        raise StaleBatch
    for offset, body in enumerate(bodies):
        body["seq"] = last - len(bodies) + 1 + offset
    return {body["id"]: body for body in bodies}


class MessageWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        workers: int = 4,
        max_batch: int = 256,
        on_sent: Callable[[UUID, int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.on_sent = on_sent
        self.batches = 0  # transactions written (for /metrics)
        self.sends = 0  # sends they carried
        self.queues: list[asyncio.Queue[SendRequest]] = [asyncio.Queue() for _ in range(workers)]
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._work(q_), name=f"message-writer-{i}")
            for i, q_ in enumerate(self.queues)
        ]

    async def stop(self) -> None:
        await stop(*self.tasks)

    async def send(self, req: SendRequest) -> SendResult:
        """Queue a send and wait until it is committed (or refused).

        Raises: the XFChatError that refused it, or the database error that failed it."""
        check_content(req.content)
        if req.nonce is not None and not 1 <= len(req.nonce) <= 64:
            raise BadRequest("a nonce is 1 to 64 characters", code="INVALID_NONCE", field="nonce")
        self.queues[hash(req.channel_id) % len(self.queues)].put_nowait(req)
        return await asyncio.shield(req.future)

    async def _work(self, queue: asyncio.Queue[SendRequest]) -> None:
        # Two transactions in flight per queue: the next batch begins and checks while the
        # previous one writes and commits. Messages of one conversation still get their
        # sequence numbers in commit order: the write statement takes the counter row.
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        running: set[asyncio.Task[None]] = set()
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            by_channel: dict[UUID, list[SendRequest]] = {}
            for req in batch:
                by_channel.setdefault(req.channel_id, []).append(req)
            for channel_id, reqs in by_channel.items():
                await in_flight.acquire()
                task = asyncio.create_task(self._write_released(channel_id, reqs, in_flight))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _write_released(
        self, channel_id: UUID, reqs: list[SendRequest], in_flight: asyncio.Semaphore
    ) -> None:
        try:
            await self._write(channel_id, [r for r in reqs if not r.future.done()])
        finally:
            in_flight.release()

    async def _write(self, channel_id: UUID, reqs: list[SendRequest]) -> None:
        if not reqs:
            return
        self.batches += 1
        self.sends += len(reqs)
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    outcomes = await write_batch(conn, channel_id, reqs)
                break  # committed
            except (
                StaleBatch,
                asyncpg.UniqueViolationError,
                asyncpg.DeadlockDetectedError,
                asyncpg.SerializationError,
            ):
                # Another process inserted one of these ids (or nonces) meanwhile, or the
                # participants changed between the two statements: the next attempt's
                # check sees it and answers accordingly.
                if attempt == RETRIES:
                    busy = ServiceUnavailable(
                        "the conversation is too busy right now; retry",
                        headers={"Retry-After": "1"},
                    )
                    return self._fail(reqs, busy)
            except Exception as exc:  # the database is gone, a timeout: nothing was written
                return self._fail(reqs, exc)
        created: dict[UUID, int] = {}
        for req, outcome in zip(reqs, outcomes, strict=True):
            if isinstance(outcome, XFChatError):
                req.future.set_exception(outcome)
            else:
                req.future.set_result(outcome)
                if outcome.created:
                    created[req.actor.user_id] = created.get(req.actor.user_id, 0) + 1
        if self.on_sent is not None:
            for user_id, n in created.items():
                self.on_sent(user_id, n)

    @staticmethod
    def _fail(reqs: list[SendRequest], exc: BaseException) -> None:
        log.warning("a batch of %d sends failed: %s", len(reqs), exc)
        for req in reqs:
            if not req.future.done():
                req.future.set_exception(exc)
