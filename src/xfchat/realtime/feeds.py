"""Opening a subscription: what a connection follows and from where.

The user's own stream is registered with the hub first, so its events collect in the
inbox; then the conversations, the position of every stream and the session's liveness
are read in one snapshot (REPEATABLE READ). Everything after that snapshot is then in
the user stream (joins, leaves, revocations, all processed in order) or after the
positions read (delivered live, or read from the log by the catch-up that always
follows). Nothing is missed and nothing leaks: a conversation joined or left while the
feed opens is handled by its event, at its exact place.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries import event_log as events_q
from xfchat.domain.accounts import Actor, require_live_session
from xfchat.domain.conversations import access_conversation, followed_conversation_ids
from xfchat.realtime.cursor import BadToken, decode
from xfchat.realtime.events import Stream, StreamKind
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Subscriber


def _key(row: events_q.StreamRow) -> Stream:
    return Stream(StreamKind(row.kind), row.entity_id)


async def _snapshot(
    conn: asyncpg.Connection, actor: Actor, streams: list[Stream]
) -> dict[Stream, events_q.StreamRow]:
    """The rows of these streams that exist, in the caller's snapshot; refuses a session
    that is no longer live."""
    await require_live_session(conn, actor)
    rows = await events_q.list_streams(
        conn, kinds=[s.kind.value for s in streams], entity_ids=[s.entity_id for s in streams]
    )
    return {_key(r): r for r in rows}


async def _ids(pool: asyncpg.Pool, streams: list[Stream]) -> dict[Stream, int]:
    """Stream ids, creating the rows of streams that have no event yet (their position
    in the snapshot was 0, so following them from 0 is exact)."""
    async with pool.acquire() as conn:
        rows = await events_q.ensure_streams(
            conn, kinds=[s.kind.value for s in streams], entity_ids=[s.entity_id for s in streams]
        )
    return {_key(r): r.id for r in rows}


async def open_user_feed(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, token: str | None
) -> tuple[Subscriber, bool]:
    """Everything the user follows: their own stream and each conversation's.

    Without a token the feed starts now. With one it resumes right after it; if the
    token is unusable (malformed, or older than the log's retention) the feed starts now
    and the second value is True: the client must reload its state (a "resync").

    Raises: Unauthorized (SESSION_REVOKED).
    """
    sub = hub.subscribe(actor.user_id, actor.session_id)
    try:
        me = Stream.user(actor.user_id)
        hub.index_add(sub, me)
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            conversations = await followed_conversation_ids(conn, actor.user_id)
            streams = [me, *(Stream.channel(c) for c in conversations)]
            rows = await _snapshot(conn, actor, streams)
            positions, resync = _positions(token, rows)
            left = await _left_since(conn, actor, positions, rows.get(me))
        ids = await _ids(pool, streams + left)
        for stream in streams:
            row = rows.get(stream)
            head = row.last_pos if row else 0
            pos = head if positions is None or resync else positions.get(ids[stream])
            if pos is None:
                pos = head
                sub.tokenless.add(stream)
            sub.follow_now(stream, ids[stream], pos)
        if positions is not None and not resync:
            for stream in left:  # followed until its participant.removed, then dropped
                sub.follow_now(stream, ids[stream], positions[ids[stream]])
        sub.catch_up()
        return sub, resync
    except BaseException:
        sub.close("error")
        raise


def _positions(
    token: str | None, rows: dict[Stream, events_q.StreamRow]
) -> tuple[dict[int, int] | None, bool]:
    """The token's positions, and whether it cannot be used (a resync)."""
    if not token:
        return None, False
    try:
        positions = decode(token)
    except BadToken:
        return None, True
    for row in rows.values():
        pos = positions.get(row.id)
        if pos is not None and not row.pruned_through <= pos <= row.last_pos:
            return None, True
    return positions, False


async def _left_since(
    conn: asyncpg.Connection,
    actor: Actor,
    positions: dict[int, int] | None,
    me: events_q.StreamRow | None,
) -> list[Stream]:
    """Conversations the token still follows that the user has left since: their
    events up to the user's removal are still theirs to receive."""
    if positions is None or me is None or me.id not in positions:
        return []
    gone = await events_q.list_event_data_after(
        conn,
        kind="user",
        entity_id=actor.user_id,
        after=positions[me.id],
        type="conversation.removed",
    )
    left = [Stream.channel(UUID(d["id"])) for d in gone]
    rows = await events_q.list_streams(
        conn, kinds=["channel"] * len(left), entity_ids=[s.entity_id for s in left]
    )
    return [_key(r) for r in rows if r.id in positions]


async def open_channel_feed(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, channel_id: UUID, conn: asyncpg.Connection
) -> Subscriber:
    """One conversation's stream from the caller's snapshot on (`conn` is in a
    REPEATABLE READ transaction that the caller then reads the history in).

    Raises: NotFound (CONVERSATION_NOT_FOUND), Unauthorized (SESSION_REVOKED)."""
    sub = hub.subscribe(actor.user_id, actor.session_id)
    try:
        stream = Stream.channel(channel_id)
        hub.index_add(sub, stream)
        await access_conversation(conn, actor, channel_id)
        rows = await _snapshot(conn, actor, [stream])
        row = rows.get(stream)
        ids = await _ids(pool, [stream])
        sub.follow_now(stream, ids[stream], row.last_pos if row else 0)
        sub.catch_up()
        return sub
    except BaseException:
        sub.close("error")
        raise
