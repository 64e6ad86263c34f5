"""Opening a subscription: what a connection follows and from where.

The order matters: the subscriber is registered with the hub (so live events start
collecting in its inbox) before positions are read from the database; anything that
commits in between is then either at or below the position read (already done) or
above it (in the inbox), never lost.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries import events as events_q
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import followed_conversation_ids
from xfchat.realtime.cursor import BadToken, decode
from xfchat.realtime.events import Stream, StreamKind
from xfchat.realtime.hub import Hub, Subscriber


async def _register(
    hub: Hub, pool: asyncpg.Pool, sub: Subscriber, streams: list[Stream]
) -> dict[Stream, events_q.StreamRow]:
    for stream in streams:
        hub.index_add(sub, stream)
    try:
        async with pool.acquire() as conn:
            rows = await events_q.ensure_streams(
                conn,
                kinds=[s.kind.value for s in streams],
                entity_ids=[s.entity_id for s in streams],
            )
    except BaseException:
        sub.close("error")
        raise
    return {Stream(StreamKind(r.kind), r.entity_id): r for r in rows}


async def open_user_feed(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, token: str | None
) -> tuple[Subscriber, bool]:
    """Everything the user follows: their own stream and each conversation's.

    Without a token the feed starts now. With one it resumes right after it; if the
    token is unusable (malformed, or older than the log's retention) the feed starts now
    and the second value is True: the client must reload its state (a "resync").
    """
    sub = hub.subscribe(actor.user_id, actor.session_id)
    async with pool.acquire() as conn:
        conversations = await followed_conversation_ids(conn, actor.user_id)
    streams = [Stream.user(actor.user_id), *(Stream.channel(c) for c in conversations)]
    rows = await _register(hub, pool, sub, streams)
    positions: dict[int, int] | None = None
    resync = False
    if token:
        try:
            positions = decode(token)
        except BadToken:
            resync = True
    if positions is not None:
        for stream in streams:
            row = rows[stream]
            pos = positions.get(row.id)
            if pos is not None and not row.pruned_through <= pos <= row.last_pos:
                resync = True
    for stream in streams:
        row = rows[stream]
        if positions is None or resync or row.id not in positions:
            sub.follow_now(stream, row.id, row.last_pos)
            if positions is not None and not resync:
                sub.tokenless.add(stream)
        else:
            sub.follow_now(stream, row.id, positions[row.id])
    if positions is not None and not resync:
        sub.catch_up()
    return sub, resync


async def open_channel_feed(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, channel_id: UUID
) -> Subscriber:
    """One conversation's stream from now on (the caller reads the history itself)."""
    sub = hub.subscribe(actor.user_id, actor.session_id)
    stream = Stream.channel(channel_id)
    rows = await _register(hub, pool, sub, [stream])
    sub.follow_now(stream, rows[stream].id, rows[stream].last_pos)
    return sub
