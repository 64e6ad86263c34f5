"""Sending messages: coalesced into one transaction per channel, acknowledged after commit.

Each process has one MessageWriter. A send waits in the queue of the worker that owns
its channel (channels are spread over a few workers by hash, so one busy conversation
does not hold up the others). A worker takes everything waiting, and for each channel
runs one transaction: one query checks access, replies and mentions for the whole
batch, one statement inserts every new message at consecutive sequence numbers, one
statement appends their `message.created` events (with one NOTIFY). Only after COMMIT
does any send learn its result, so "acknowledged" always means "durable".

Idempotency: a PUT names its message id; the same id with the same author, channel,
text and reply again returns the stored message (200, nothing broadcast); anything else
under that id is 409. A POST may carry a nonce: the same author's nonce in the same
channel returns the stored message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages as q
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import not_found
from xfchat.domain.messages import check_content, mentioned_ids, message_json, view_json
from xfchat.errors import BadRequest, Conflict, Forbidden, XFChatError
from xfchat.realtime.events import Event, Stream, emit_many

log = logging.getLogger("xfchat.send")

RETRIES = 3


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
    future: asyncio.Future[SendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class SendResult:
    message: dict[str, Any]
    created: bool  # False: an idempotent repeat that returned the stored message


def same_send(req: SendRequest, row: q.MessageRow) -> bool:
    return (
        row.channel_id == req.channel_id
        and row.author_id == req.actor.user_id
        and row.content == req.content
        and row.reply_to_id == req.reply_to_id
    )


async def write_batch(
    conn: asyncpg.Connection, channel_id: UUID, reqs: list[SendRequest]
) -> list[SendResult | XFChatError]:
    """Write one channel's batch in the caller's transaction; one outcome per request."""
    mentions = {id(r): mentioned_ids(r.content) for r in reqs}
    check = await q.check_send(
        conn,
        channel_id=channel_id,
        authors=list({r.actor.user_id for r in reqs}),
        reply_ids=list({r.reply_to_id for r in reqs if r.reply_to_id}),
        mentioned=list({u for m in mentions.values() for u in m}),
    )
    if check is None:
        return [not_found() for _ in reqs]
    existing = await q.find_existing(
        conn,
        channel_id=channel_id,
        ids=[r.message_id for r in reqs if r.client_chose_id],
        author_ids=[r.actor.user_id for r in reqs if r.nonce],
        nonces=[r.nonce for r in reqs if r.nonce],
    )
    by_id = {m.id: m for m in existing}
    by_nonce = {(m.author_id, m.nonce): m for m in existing if m.nonce}
    outcomes: list[SendResult | XFChatError | None] = [None] * len(reqs)
    repeats: dict[int, q.MessageRow] = {}
    fresh: list[int] = []
    claimed: dict[UUID, int] = {}  # message id -> index of the request inserting it
    allowed, replyable = set(check.allowed), set(check.replyable)
    for i, r in enumerate(reqs):
        if r.actor.user_id not in allowed:
            outcomes[i] = not_found()
        elif check.blocked:
            outcomes[i] = Forbidden("you cannot message this user", code="CANNOT_MESSAGE_USER")
        elif r.client_chose_id and r.message_id in by_id:
            old = by_id[r.message_id]
            if same_send(r, old):
                repeats[i] = old
            else:
                outcomes[i] = Conflict(
                    f"message {r.message_id} already exists with another body",
                    code="MESSAGE_ID_CONFLICT",
                )
        elif r.nonce and (r.actor.user_id, r.nonce) in by_nonce:
            repeats[i] = by_nonce[(r.actor.user_id, r.nonce)]
        elif r.reply_to_id and r.reply_to_id not in replyable:
            outcomes[i] = BadRequest(
                "reply_to_id is not a message of this conversation",
                code="INVALID_REPLY",
                field="reply_to_id",
            )
        elif r.message_id in claimed:  # the same id twice in one batch
            first = reqs[claimed[r.message_id]]
            if (first.actor.user_id, first.content, first.reply_to_id) == (
                r.actor.user_id,
                r.content,
                r.reply_to_id,
            ):
                fresh.append(i)  # resolved below as a repeat of the first
            else:
                outcomes[i] = Conflict(
                    f"message {r.message_id} already exists with another body",
                    code="MESSAGE_ID_CONFLICT",
                )
        else:
            claimed[r.message_id] = i
            fresh.append(i)
    inserting = [i for i in fresh if claimed.get(reqs[i].message_id) == i]
    mentionable = set(check.mentionable)
    rows = (
        await q.insert_messages(
            conn,
            channel_id=channel_id,
            ids=[reqs[i].message_id for i in inserting],
            author_ids=[reqs[i].actor.user_id for i in inserting],
            contents=[reqs[i].content for i in inserting],
            nonces=[reqs[i].nonce for i in inserting],
            reply_to_ids=[reqs[i].reply_to_id for i in inserting],
            mentions=[[u for u in mentions[id(reqs[i])] if u in mentionable] for i in inserting],
        )
        if inserting
        else []
    )
    bodies: dict[UUID, dict[str, Any]] = {}
    for i, row in zip(inserting, rows, strict=True):
        bodies[row.id] = message_json(row, reqs[i].author)
        outcomes[i] = SendResult(bodies[row.id], True)
    if rows:
        stream = Stream.channel(channel_id)
        await emit_many(conn, [Event("message.created", stream, bodies[row.id]) for row in rows])
    for i in fresh:
        if outcomes[i] is None:  # the second request of a pair in this batch
            outcomes[i] = SendResult(bodies[reqs[i].message_id], False)
    if repeats:
        views = {
            v.id: v
            for v in await q.list_message_views(
                conn, viewer=None, ids=[m.id for m in repeats.values()]
            )
        }
        for i, old in repeats.items():
            outcomes[i] = SendResult(view_json(views[old.id]), False)
    return [o for o in outcomes if o is not None]


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
        self.queues: list[asyncio.Queue[SendRequest]] = [asyncio.Queue() for _ in range(workers)]
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._work(q_), name=f"message-writer-{i}")
            for i, q_ in enumerate(self.queues)
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def send(self, req: SendRequest) -> SendResult:
        """Queue a send and wait until it is committed (or refused).

        Raises: the XFChatError that refused it, or the database error that failed it."""
        check_content(req.content)
        if req.nonce is not None and not 1 <= len(req.nonce) <= 64:
            raise BadRequest("a nonce is 1 to 64 characters", code="INVALID_NONCE", field="nonce")
        self.queues[hash(req.channel_id) % len(self.queues)].put_nowait(req)
        return await asyncio.shield(req.future)

    async def _work(self, queue: asyncio.Queue[SendRequest]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            by_channel: dict[UUID, list[SendRequest]] = {}
            for req in batch:
                by_channel.setdefault(req.channel_id, []).append(req)
            for channel_id, reqs in by_channel.items():
                await self._write(channel_id, [r for r in reqs if not r.future.done()])

    async def _write(self, channel_id: UUID, reqs: list[SendRequest]) -> None:
        if not reqs:
            return
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    outcomes = await write_batch(conn, channel_id, reqs)
                break  # committed
            except (
                asyncpg.UniqueViolationError,
                asyncpg.DeadlockDetectedError,
                asyncpg.SerializationError,
            ) as exc:
                # Another process inserted one of these ids (or nonces) meanwhile: the
                # next attempt's check sees it and answers it as a repeat or a conflict.
                if attempt == RETRIES:
                    return self._fail(reqs, exc)
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
