"""Writing a batch of sends to one channel (domain/messages_writer.py queues and
batches them): one transaction of two statements. The first share-locks the channel's
row, reads the access facts of the authors and of the people they mention (the
channel-access seam decides from them), checks replies, finds earlier sends with the
same ids or nonces, and counts every send in its rate-limit buckets; the second takes
the next sequence numbers, inserts the new messages and appends their `message.created`
events. Only after COMMIT does any send learn its result, so "acknowledged" always
means "durable".

Idempotency: a PUT names its message id; the same id with the same author, channel,
text and reply again returns the stored message (200, nothing broadcast); anything else
under that id is 409. A POST may carry a nonce: the same author's nonce in the same
channel returns the stored message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import attachments as attachments_q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import messages as q
from xfchat.db.queries import messages_send as send_q
from xfchat.db.queries import webhooks as webhooks_q
from xfchat.db.queries.access import AccessFacts, facts_from_json
from xfchat.domain.access import (
    channel_not_found,
    facts_permissions,
)
from xfchat.domain.attachments import AttachmentDraft
from xfchat.domain.event_payloads import MessagePayload
from xfchat.domain.events import encode
from xfchat.domain.messages import (
    HISTORY,
    history_needed,
    mentioned_ids,
    mentioned_role_ids,
    view_json,
    without_history,
)
from xfchat.domain.messages_batch import (
    BucketCounts,
    Buckets,
    Mentions,
    Pings,
    SendRequest,
    SendResult,
    drafts,
    refusals,
)
from xfchat.domain.permissions import Permission
from xfchat.domain.rate_limits import Decision
from xfchat.errors import BadRequest, Conflict, RateLimited, XFChatError


def _same_send(req: SendRequest, old: dict[str, Any]) -> bool:
    """Whether `req` sends stored message `old` again. One edited or deleted since no
    longer shows what was sent: its author's send of its id or nonce in its channel
    is taken as the repeat it almost surely is (a client retrying after a timeout)."""
    return bool(
        old["channel_id"] == str(req.channel_id)
        and old["author_id"] == str(req.actor.user_id)
        and (
            old["changed"]
            or (
                old["content"] == req.content
                and old["reply_to_id"] == (str(req.reply_to_id) if req.reply_to_id else None)
                and old["files"] == [d.sha256 for d in req.attachments]
            )
        )
    )


def _conflict(message_id: UUID) -> Conflict:
    return Conflict(
        f"message {message_id} already exists with another body", code="MESSAGE_ID_CONFLICT"
    )


def _nonce_conflict(nonce: str) -> Conflict:
    return Conflict(
        f"you already sent another message with the nonce {nonce!r} in this channel",
        code="NONCE_CONFLICT",
        field="nonce",
    )


class StaleBatch(Exception):
    """Who may see the channel changed while the batch waited for its lock: retry it
    (the next attempt reads the new access)."""


async def write_batch(
    conn: asyncpg.Connection,
    channel_id: UUID,
    reqs: list[SendRequest],
    seen: Callable[[UUID, list[dict[str, Any]]], None] | None = None,
) -> list[SendResult | XFChatError]:
    """Write one channel's batch in the caller's transaction (two statements); one
    outcome per request. `seen` is told the access facts read (the fast path decides
    the next batches from them). Raises StaleBatch (nothing written) if access changed
    while the first statement waited for the channel's lock."""
    mentions = {id(r): mentioned_ids(r.content) for r in reqs}
    buckets = Buckets(reqs)
    with_nonce = [r for r in reqs if r.nonce]
    authors = list(dict.fromkeys(r.actor.user_id for r in reqs if r.webhook is None))
    state = await send_q.prepare_send_batch(
        conn,
        channel_id=channel_id,
        users=list(dict.fromkeys([*authors, *(u for m in mentions.values() for u in m)])),
        # (in id order: they are share-locked one by one, and a bulk deletion locks so)
        reply_ids=sorted({r.reply_to_id for r in reqs if r.reply_to_id}),
        ids=[r.message_id for r in reqs if r.client_chose_id],
        nonce_authors=[r.actor.user_id for r in with_nonce],  # (a webhook's has none)
        nonces=[r.nonce for r in with_nonce if r.nonce],
        buckets=buckets.order,
        periods=buckets.periods(),
        role_ids=list({role for r in reqs for role in mentioned_role_ids(r.content)}),
    )
    if state is None:
        return [channel_not_found() for _ in reqs]
    if not state.current:
        raise StaleBatch
    if seen is not None:
        seen(channel_id, state.facts)
    facts = facts_from_json(state.facts)
    by_user = {f.user_id: f for f in facts}
    denied = refusals(facts, reqs)
    slow = _Slowmode(state, by_user)
    await slow.read_held(conn, channel_id, authors)
    counts = BucketCounts(state.bucket_hits, state.bucket_ends, state.now)
    readers = {u for u, f in by_user.items() if facts_permissions(f) & HISTORY}
    fates = _sort_out(reqs, state, denied, readers)
    outcomes: list[SendResult | XFChatError | None] = [None] * len(reqs)
    inserting: list[int] = []
    decisions: list[list[Decision]] = []
    for i, fate in enumerate(fates):
        # Slowmode first: a send it refuses is not counted in the rate limits either.
        user = reqs[i].webhook is None  # (slowmode is a member's; a webhook has its limit)
        waited = slow.refusal(reqs[i].actor.user_id) if fate is None and user else None
        decisions.append(buckets.judge(counts, i, count=fate is None and waited is None))
        limited = next((d for d in decisions[i] if not d.allowed), None)
        if isinstance(fate, XFChatError):
            outcomes[i] = fate
        elif limited is not None:
            outcomes[i] = limited.refusal()
        elif waited is not None:
            outcomes[i] = waited
        elif fate is None:
            inserting.append(i)
            if user:
                slow.sent(reqs[i].actor.user_id)
    bodies: dict[str, MessagePayload] = {}
    if inserting:
        previews = {UUID(p["id"]): p for p in state.replyable}
        roles = {UUID(r["id"]): bool(r["mentionable"]) for r in state.roles}
        pings = Pings(facts, roles)
        new = [(reqs[i], pings.of(reqs[i], mentions[id(reqs[i])])) for i in inserting]
        bodies = await _insert(conn, channel_id, state.now, new, previews, buckets.increments())
        for i in inserting:
            outcomes[i] = SendResult(bodies[str(reqs[i].message_id)], True, decisions[i])
    repeats = {i: fate for i, fate in enumerate(fates) if isinstance(fate, _Repeat)}
    stored = [r.message_id for r in repeats.values() if r.batch_mate is None]
    views = (
        {
            str(v.id): view_json(v)
            for v in await q.list_message_views(conn, viewer=None, ids=[UUID(m) for m in stored])
        }
        if stored
        else {}
    )
    for i, repeat in repeats.items():
        if repeat.batch_mate is None:
            view = views[repeat.message_id]
            if reqs[i].actor.user_id not in readers:  # (it lost the history since)
                view = without_history(view)
            outcomes[i] = SendResult(view, False, decisions[i])
        else:  # the same send twice in this batch: the first one's fate
            first = outcomes[repeat.batch_mate]
            outcomes[i] = (
                SendResult(first.message, False, decisions[i])
                if isinstance(first, SendResult)
                else first
            )
    return [o for o in outcomes if o is not None]


SLOWMODE_BYPASS = Permission.MANAGE_MESSAGES | Permission.MANAGE_CHANNELS
SLOWMODE_NAMESPACE = b"slowmode"  # (+ the channel's id: the lock of one author's sends there)


class _Slowmode:
    """A channel's slowmode: a member sends once per `slowmode` seconds there, unless
    they hold MANAGE_MESSAGES or MANAGE_CHANNELS (either bypasses it)."""

    def __init__(self, state: send_q.SendBatchState, facts: dict[UUID, AccessFacts]) -> None:
        self.seconds = state.slowmode
        self.now = state.now
        self.facts = facts
        self.last = {UUID(r["user_id"]): datetime.fromisoformat(r["at"]) for r in state.last_sent}

    def applies(self, author: UUID) -> bool:
        return bool(self.seconds) and not facts_permissions(self.facts[author]) & SLOWMODE_BYPASS

    async def read_held(
        self, conn: asyncpg.Connection, channel_id: UUID, authors: list[UUID]
    ) -> None:
        """Take the slowmode lock of each author it applies to (until the transaction
        ends) and read their last sends again, after it. The first statement read them
        from its snapshot, taken before it waited for any lock: a send of theirs in
        another batch (another process's writer, or a send with files) committed
        meanwhile was not in it, and both would pass. Now the later of two such sends
        waits for the earlier's commit, and sees it."""
        held = sorted(a for a in set(authors) if self.applies(a))
        if not held:
            return
        keys = sorted(
            {locks_q.advisory_key(SLOWMODE_NAMESPACE + channel_id.bytes, a) for a in held}
        )
        await locks_q.lock_transaction_all(conn, keys=keys)
        self.last.update(await send_q.list_last_sent(conn, channel_id=channel_id, user_ids=held))

    def refusal(self, author: UUID) -> RateLimited | None:
        if not self.applies(author):
            return None
        last = self.last.get(author)
        # (at most the period: a send committed after this transaction began is later
        # than its `now`)
        wait = (
            0.0
            if last is None
            else min(self.seconds, self.seconds - (self.now - last).total_seconds())
        )
        if wait <= 0:
            return None
        return RateLimited(
            f"slowmode: you can send here again in {wait:.1f} s",
            code="SLOWMODE",
            extra={"retry_after": round(wait, 3)},
            retry_after=wait,
        )

    def sent(self, author: UUID) -> None:
        self.last[author] = self.now


@dataclass(frozen=True)
class _Repeat:
    """A send that was already made: its message's id, and the request of this batch
    that makes it (None: it is stored already)."""

    message_id: str
    batch_mate: int | None = None


def _sort_out(
    reqs: list[SendRequest],
    state: send_q.SendBatchState,
    denied: dict[UUID, XFChatError | None],
    readers: set[UUID],
) -> list[XFChatError | _Repeat | None]:
    """Each request's fate before rate limits: refused (its error), a repeat of a stored
    or batch-mate send, or None (to be written if its limits allow). A reply needs
    READ_MESSAGE_HISTORY (`readers`: the authors who hold it), asked before whether its
    target exists: its preview quotes the target, and the answer must not tell someone
    who may not read the history which messages exist."""
    by_id = {e["id"]: e for e in state.existing}
    by_nonce = {(e["author_id"], e["nonce"]): e for e in state.existing if e["nonce"]}
    replyable = {UUID(p["id"]) for p in state.replyable}
    fates: list[XFChatError | _Repeat | None] = []
    claimed: dict[UUID, int] = {}  # message id -> the request of this batch making it
    claimed_nonce: dict[tuple[UUID, str], int] = {}  # (author, nonce) -> likewise

    def same(a: SendRequest, b: SendRequest) -> bool:
        return (a.actor.user_id, a.content, a.reply_to_id) == (
            b.actor.user_id,
            b.content,
            b.reply_to_id,
        )

    for i, r in enumerate(reqs):
        if r.webhook is not None:  # (no id of its own choosing, no nonce, no reply)
            fates.append(None)
            continue
        old = by_id.get(str(r.message_id)) if r.client_chose_id else None
        stored_nonce = by_nonce.get((str(r.actor.user_id), r.nonce)) if r.nonce else None
        mate_nonce = claimed_nonce.get((r.actor.user_id, r.nonce)) if r.nonce else None
        refused = denied[r.actor.user_id]
        stored = old if old is not None else stored_nonce
        if refused is not None and refused.status != 404 and stored is not None:
            # Sent before the author lost the right to send (timed out, say): a retry
            # is told it was stored, since the author may still see the channel.
            refused = None if _same_send(r, stored) else refused
        fate: XFChatError | _Repeat | None = None
        if refused is not None:
            fate = refused
        elif old is not None:
            fate = _Repeat(old["id"]) if _same_send(r, old) else _conflict(r.message_id)
        elif stored_nonce is not None:
            # (a PUT names its message: a nonce of another one is a conflict, not a
            # repeat answered with another message than the one its URL names)
            same_body = _same_send(r, stored_nonce) and not r.client_chose_id
            fate = _Repeat(stored_nonce["id"]) if same_body else _nonce_conflict(r.nonce or "")
        elif r.reply_to_id and r.actor.user_id not in readers:
            fate = history_needed()
        elif r.reply_to_id and r.reply_to_id not in replyable:
            fate = BadRequest(
                "reply_to_id is not a message of this channel",
                code="INVALID_REPLY",
                field="reply_to_id",
            )
        elif mate_nonce is not None:  # a nonce twice in one batch
            mate = reqs[mate_nonce]
            ok = same(mate, r) and (not r.client_chose_id or mate.message_id == r.message_id)
            fate = (
                _Repeat(str(mate.message_id), mate_nonce) if ok else _nonce_conflict(r.nonce or "")
            )
        elif r.message_id in claimed:  # the same id twice in one batch
            mate_i = claimed[r.message_id]
            ok = same(reqs[mate_i], r)
            fate = _Repeat(str(r.message_id), mate_i) if ok else _conflict(r.message_id)
        else:
            claimed[r.message_id] = i
            if r.nonce:
                claimed_nonce[(r.actor.user_id, r.nonce)] = i
        fates.append(fate)
    return fates


async def _insert(
    conn: asyncpg.Connection,
    channel_id: UUID,
    now: datetime,
    new: list[tuple[SendRequest, Mentions]],
    previews: dict[UUID, dict[str, Any]],
    counted: tuple[list[str], list[int]],
) -> dict[str, MessagePayload]:
    """Insert these sends (each with what it mentions) and their `message.created`
    events, count them in their rate-limit buckets, and move each author's read position
    to their newest message, in the caller's transaction; their bodies by message id."""
    if not conn.is_in_transaction():
        raise RuntimeError("messages are written inside the batch's transaction")
    rows, bodies = drafts(channel_id, now, new, previews)
    last = await send_q.insert_messages_and_events(  # "seq": 0 until the statement fills it
        conn,
        channel_id=channel_id,
        created_at=now,
        ids=[row.id for row in rows],
        author_ids=[row.author_id for row in rows],  # (None: a webhook's)
        contents=[row.content for row in rows],
        nonces=[row.nonce for row in rows],
        reply_to_ids=[row.reply_to_id for row in rows],
        mentions=[row.mentions for row in rows],
        event_datas=[encode(b) for b in bodies],
        buckets=counted[0],
        counts=counted[1],
        mention_everyone=[row.mention_everyone for row in rows],
        mention_roles=[row.mention_roles for row in rows],
    )
    for offset, body in enumerate(bodies):
        body["seq"] = last - len(bodies) + 1 + offset
    posted = [(r.message_id, r.webhook) for r, _ in new if r.webhook is not None]
    if posted:
        await webhooks_q.set_message_webhooks(
            conn,
            message_ids=[m for m, _ in posted],
            webhook_ids=[w.webhook_id for _, w in posted],
            names=[w.name for _, w in posted],
            avatar_urls=[w.avatar_url for _, w in posted],
        )
    for r, _ in new:
        if r.attachments:
            await _insert_attachments(conn, channel_id, r.message_id, r.attachments)
    return {body["id"]: body for body in bodies}


async def _insert_attachments(
    conn: asyncpg.Connection, channel_id: UUID, message_id: UUID, drafts: list[AttachmentDraft]
) -> None:
    await attachments_q.insert_attachments(
        conn,
        message_id=message_id,
        channel_id=channel_id,
        ids=[d.id for d in drafts],
        file_ids=[d.file_id for d in drafts],
        thumbnail_ids=[d.thumbnail_id for d in drafts],
        thumbnail_types=[d.thumbnail_type for d in drafts],
        filenames=[d.filename for d in drafts],
        content_types=[d.content_type for d in drafts],
        sizes=[d.size for d in drafts],
        widths=[d.width for d in drafts],
        heights=[d.height for d in drafts],
        thumbnail_widths=[d.thumbnail_width for d in drafts],
        thumbnail_heights=[d.thumbnail_height for d in drafts],
    )
