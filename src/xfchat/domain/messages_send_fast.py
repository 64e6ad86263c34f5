"""A send batch in one round trip (the fast path of domain/messages_writer.py).

The checked path (domain/messages_send.py) reads what it decides from and then writes,
in a transaction: four round trips (BEGIN, two statements, COMMIT). Most batches are
like the last one in their channel: the same authors, who may still send there. So the
writer keeps the access facts the checked path last read per channel and user
(`FactsCache`, a lifespan object), decides a batch from them here, with the same
functions (`refusal`, `Pings`), and sends the decision and the write together in one
statement that is its own transaction (db/queries/messages_send.py, send_batch_fast):
it locks the channel as every send does and writes only if the facts it reads then
are those the decision was made from, no message with one of the ids or nonces exists,
the channel has no slowmode and every rate-limit bucket stays within its limit. Its
answer comes after its commit, so "acknowledged" still means "durable". When a check
fails it writes nothing and the batch takes the checked path, which reads the facts
again.

A batch takes this path only when it has no reply (the preview is read with the
write), no role mention (the roles too), no files, and no id or nonce twice.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages_send as send_q
from xfchat.db.queries.access import AccessFacts, facts_from_json
from xfchat.domain.events import encode
from xfchat.domain.messages import mentioned_ids, mentioned_role_ids
from xfchat.domain.messages_batch import (
    BucketCounts,
    Buckets,
    Pings,
    SendRequest,
    SendResult,
    drafts,
    refusals,
)
from xfchat.errors import XFChatError

PLACEHOLDER_TIME = datetime(2000, 1, 1, tzinfo=UTC)  # (replaced by "@now" in the bodies)


class FactsCache:
    """The access facts (as the checked path reads them: JSON rows, each kept beside
    what it reads as, so that a batch decides without parsing them again) last read
    per channel and user, for at most `channels` channels (the least recently used go
    first), `users` users in each and `rows` rows in all. Entries may be stale: the
    fast path's statement checks them against the current facts.

    A row is about 2.5 KB, and anyone may be asked about: a message names up to 100
    people, made-up ids too. Bounded by channels and users alone, one account's
    messages in its own servers' channels filled 4,096 x 1,024 rows, some 10 GB; `rows`
    keeps it to about 80 MB (8 people a channel, were all 4,096 in use), a little more
    with what they read as."""

    def __init__(self, channels: int = 4096, users: int = 1024, rows: int = 32_768) -> None:
        self.channels = channels
        self.users = users
        self.rows = rows
        self._facts: OrderedDict[UUID, dict[UUID, tuple[dict[str, Any], AccessFacts]]] = (
            OrderedDict()
        )
        self._held = 0  # rows in all channels together

    def remember(self, channel_id: UUID, rows: list[dict[str, Any]]) -> None:
        known = self._facts.pop(channel_id, {})
        self._held -= len(known)
        for row, facts in zip(rows, facts_from_json(rows), strict=True):
            known.pop(facts.user_id, None)
            known[facts.user_id] = (row, facts)
        while len(known) > self.users:
            del known[next(iter(known))]
        self._facts[channel_id] = known
        self._held += len(known)
        while len(self._facts) > self.channels or self._held > self.rows:
            _, gone = self._facts.popitem(last=False)
            self._held -= len(gone)

    def forget(self, channel_id: UUID) -> None:
        self._held -= len(self._facts.pop(channel_id, {}))

    def get(
        self, channel_id: UUID, users: list[UUID]
    ) -> list[tuple[dict[str, Any], AccessFacts]] | None:
        """The facts of all of `users` (each as its row and what it reads as), or None
        if any is not known."""
        known = self._facts.get(channel_id)
        if known is None or any(u not in known for u in users):
            return None
        self._facts.move_to_end(channel_id)
        return [known[u] for u in users]


def eligible(reqs: list[SendRequest]) -> bool:
    """Whether a batch may take the fast path (see the module's docstring)."""
    ids = [r.message_id for r in reqs]
    nonces = [(r.actor.user_id, r.nonce) for r in reqs if r.nonce]
    return (
        len(set(ids)) == len(ids)
        and len(set(nonces)) == len(nonces)
        and all(
            not r.attachments and r.reply_to_id is None and not mentioned_role_ids(r.content)
            for r in reqs
        )
    )


async def write_batch_fast(
    conn: asyncpg.Connection, channel_id: UUID, reqs: list[SendRequest], cache: FactsCache
) -> list[SendResult | XFChatError] | None:
    """Decide and write an eligible batch in one statement, outside any transaction;
    one outcome per request, or None when it must take the checked path (nothing was
    written)."""
    named = [mentioned_ids(r.content) for r in reqs]
    authors = list(dict.fromkeys(r.actor.user_id for r in reqs))
    users = list(dict.fromkeys([*authors, *(u for m in named for u in m)]))
    known = cache.get(channel_id, users)
    if known is None:
        return None
    facts = [f for _, f in known]
    denied = refusals(facts, reqs)
    inserting = [i for i, r in enumerate(reqs) if denied[r.actor.user_id] is None]
    buckets = Buckets(reqs)
    counts = dict.fromkeys(buckets.order, 0)
    for b in (b for i in inserting for b in buckets.of[i]):
        counts[b] += 1
    pings = Pings(facts, {})
    new = [(reqs[i], pings.of(reqs[i], named[i])) for i in inserting]
    rows_, bodies = drafts(channel_id, PLACEHOLDER_TIME, new, {})
    for body in bodies:
        body["created_at"] = send_q.AT_PLACEHOLDER
    written = await send_q.send_batch_fast(
        conn,
        channel_id=channel_id,
        users=users,
        facts={str(u): row for u, (row, _) in zip(users, known, strict=True)},
        check_ids=[r.message_id for r in reqs if r.client_chose_id],
        nonce_authors=[r.actor.user_id for r in reqs if r.nonce],
        check_nonces=[r.nonce for r in reqs if r.nonce],
        buckets=buckets.order,
        periods=buckets.periods(),
        limits=buckets.limits(),
        counts=[counts[b] for b in buckets.order],
        ids=[row.id for row in rows_],
        author_ids=[r.actor.user_id for r, _ in new],
        contents=[row.content for row in rows_],
        nonces=[row.nonce for row in rows_],
        mentions=[row.mentions for row in rows_],
        event_datas=[encode(b) for b in bodies],
        mention_everyone=[row.mention_everyone for row in rows_],
    )
    if written.status != "ok":
        if written.status == "stale":
            cache.forget(channel_id)
        return None
    assert written.last is not None and written.hits is not None and written.ends is not None
    at = written.at.isoformat()
    for offset, body in enumerate(bodies):
        body["seq"] = written.last - len(bodies) + 1 + offset
        body["created_at"] = at
    seen = BucketCounts(written.hits, written.ends, written.at)
    made = iter(bodies)
    return [
        refused
        if (refused := denied[req.actor.user_id]) is not None
        else SendResult(next(made), True, buckets.judge(seen, i, count=True))
        for i, req in enumerate(reqs)
    ]
