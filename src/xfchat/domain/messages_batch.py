"""What a send batch is made of, on either path (domain/messages_send.py checks and
writes in a transaction, domain/messages_send_fast.py in one statement): the request,
its result, its rate-limit buckets, whom it pings, and the rows and bodies drafted
before the write fills in their sequence numbers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from xfchat.db.queries import messages as q
from xfchat.db.queries.access import AccessFacts
from xfchat.domain.access import MESSAGE_KINDS, facts_permissions, facts_viewers, refusal
from xfchat.domain.accounts import Actor
from xfchat.domain.attachments import AttachmentDraft, attachment_json
from xfchat.domain.event_payloads import AuthorPayload, MessagePayload
from xfchat.domain.messages import loud_mentions, message_json, not_a_text_channel
from xfchat.domain.permissions import Permission
from xfchat.domain.rate_limits import Decision, bucket_key, decide
from xfchat.errors import BadRequest, XFChatError
from xfchat.settings import RateLimit


@dataclass(frozen=True)
class WebhookPost:
    """A send by a webhook (domain/webhooks_execute.py): no account behind it. The
    actor of its SendRequest is the webhook's id under no session, which the batch
    never looks up: the token was checked in the batch's own transaction."""

    webhook_id: UUID
    name: str  # the name and avatar this message is posted with
    avatar_url: str | None


@dataclass
class SendRequest:
    actor: Actor
    author: AuthorPayload  # the author's public fields, as messages show them
    channel_id: UUID
    message_id: UUID
    content: str
    client_chose_id: bool  # PUT: the id is the client's, and idempotency goes by it
    nonce: str | None = None
    reply_to_id: UUID | None = None
    # Files stored in the send's own transaction (domain/messages_upload.py; such a
    # send is a batch of its own), inserted with the message.
    attachments: list[AttachmentDraft] = field(default_factory=list)
    # Rate-limit buckets this send counts in: (bucket, key, rule). They are counted in
    # the batch's own transaction, so a send costs no round trip of its own.
    limits: list[tuple[str, str, RateLimit]] = field(default_factory=list)
    # Answered by its batch, or at its deadline (made by the writer when it is queued)
    future: asyncio.Future[SendResult] = field(init=False, repr=False, compare=False)
    deadline: float = 0.0  # loop time by which it must be answered (set when queued)
    started: bool = False  # its batch's transaction has begun: its outcome is the batch's
    webhook: WebhookPost | None = None  # posted by a webhook (actor: none of the users)


def check_nonce(nonce: str | None) -> None:
    """Raises: BadRequest (INVALID_NONCE)."""
    if nonce is not None and not 1 <= len(nonce) <= 64:
        raise BadRequest("a nonce is 1 to 64 characters", code="INVALID_NONCE", field="nonce")


def refusals(facts: list[AccessFacts], reqs: list[SendRequest]) -> dict[UUID, XFChatError | None]:
    """Why each author of `reqs` may not send here (None: they may), from the access
    facts read for the batch: SEND_MESSAGES, ATTACH_FILES for one who sends files, and
    a channel that takes messages."""
    by_user = {f.user_id: f for f in facts}
    reqs = [r for r in reqs if r.webhook is None]  # (its channel was checked when its
    attaching = {r.actor.user_id for r in reqs if r.attachments}  # token was)
    denied: dict[UUID, XFChatError | None] = {
        a: refusal(
            by_user[a],
            Permission.SEND_MESSAGES | (Permission.ATTACH_FILES if a in attaching else 0),
        )
        for a in dict.fromkeys(r.actor.user_id for r in reqs)
    }
    if facts and facts[0].kind not in MESSAGE_KINDS:
        denied = {a: e or not_a_text_channel() for a, e in denied.items()}
    return denied


@dataclass(frozen=True)
class SendResult:
    message: MessagePayload
    created: bool  # False: an idempotent repeat that returned the stored message
    decisions: list[Decision] = field(default_factory=list)


@dataclass(frozen=True)
class BucketCounts:
    """Each of a batch's buckets' count before it, and its window's end, at `now`."""

    hits: list[int]
    ends: list[datetime]
    now: datetime


class Buckets:
    """The batch's rate-limit buckets. The first statement reads (and locks) each
    bucket's count; only the sends that will be written count in them, in order, so an
    idempotent repeat or a refused send costs nothing; the write adds what they used."""

    def __init__(self, reqs: list[SendRequest]) -> None:
        self.rules: dict[str, tuple[str, RateLimit]] = {}
        self.of: list[list[str]] = []
        for req in reqs:
            mine = []
            for bucket, key, rule in req.limits:
                stored = bucket_key(bucket, key)
                self.rules[stored] = (bucket, rule)
                mine.append(stored)
            self.of.append(mine)
        self.order = sorted(self.rules)
        self.added = dict.fromkeys(self.order, 0)

    def periods(self) -> list[int]:
        return [self.rules[b][1].period_s for b in self.order]

    def limits(self) -> list[int]:
        return [self.rules[b][1].limit for b in self.order]

    def judge(self, counts: BucketCounts, i: int, count: bool) -> list[Decision]:
        """Request i's decisions; if `count`, it is counted in its buckets when every one
        of them allows it (a repeat is never counted, and always allowed)."""
        hits = dict(zip(self.order, counts.hits, strict=True))
        ends = dict(zip(self.order, counts.ends, strict=True))
        mine = self.of[i]
        used = [hits[b] + self.added[b] + (1 if count else 0) for b in mine]
        decisions = [
            decide(self.rules[b][0], self.rules[b][1], n, ends[b], counts.now)
            for b, n in zip(mine, used, strict=True)
        ]
        if not count:
            return [replace(d, allowed=True) for d in decisions]
        if all(d.allowed for d in decisions):
            for b in mine:
                self.added[b] += 1
        return decisions

    def increments(self) -> tuple[list[str], list[int]]:
        used = [b for b in self.order if self.added[b]]
        return used, [self.added[b] for b in used]


@dataclass(frozen=True)
class Mentions:
    users: list[UUID]  # those who may see the channel
    everyone: bool
    roles: list[UUID]


class Pings:
    """Whom a send in a channel pings, from the access facts of its author and of the
    people it names, and the server's roles it names (`roles`: each one's mentionable
    flag): the named users who may see the channel; in a server, @everyone and roles as
    loud_mentions allows them."""

    def __init__(self, facts: list[AccessFacts], roles: dict[UUID, bool]) -> None:
        self.by_user = {f.user_id: f for f in facts}
        self.viewers = facts_viewers(facts)
        self.in_server = bool(facts) and facts[0].server_id is not None
        self.roles = roles

    def of(self, req: SendRequest, named: list[UUID]) -> Mentions:
        users = [u for u in named if u in self.viewers]
        if not self.in_server and req.webhook is None:  # (a webhook's is a server's)
            return Mentions(users, False, [])
        # A webhook holds no permission: never @everyone/@here, only mentionable roles.
        perms = (
            Permission(0)
            if req.webhook is not None
            else facts_permissions(self.by_user[req.actor.user_id])
        )
        return Mentions(users, *loud_mentions(req.content, perms, self.roles))


def drafts(
    channel_id: UUID,
    now: datetime,
    new: list[tuple[SendRequest, Mentions]],
    previews: dict[UUID, dict[str, Any]],
) -> tuple[list[q.MessageRow], list[MessagePayload]]:
    """The rows and bodies of these sends (each with what it mentions), "seq" 0."""
    rows = [
        q.MessageRow(
            id=r.message_id,
            channel_id=channel_id,
            seq=0,
            author_id=None if r.webhook is not None else r.actor.user_id,
            kind="default",
            content=r.content,
            nonce=r.nonce,
            reply_to_id=r.reply_to_id,
            mentions=mentioned.users,
            mention_everyone=mentioned.everyone,
            mention_roles=mentioned.roles,
            created_at=now,
            edited_at=None,
            deleted_at=None,
            pinned_at=None,
        )
        for r, mentioned in new
    ]
    bodies = [
        message_json(
            row,
            r.author,
            reply_to=previews.get(r.reply_to_id) if r.reply_to_id else None,  # type: ignore[arg-type]
            attachments=[attachment_json(d) for d in r.attachments],
            webhook_id=r.webhook.webhook_id if r.webhook is not None else None,
        )
        for row, (r, _) in zip(rows, new, strict=True)
    ]
    return rows, bodies
