"""Events and the one way to write them: `emit(conn, event)` inside the writer's
transaction.

The event goes into the durable log at the next position of its stream and a NOTIFY is
queued in the same transaction, so listeners hear of it only after commit and never
for a rolled-back write. Positions are gap-free and commit-ordered per stream because
the stream's counter row stays locked until the writer's transaction ends.

Lock order: a transaction takes its row locks on domain rows first and emits last; when
it emits to several streams, `emit_many` orders them by stream so two writers touching
the same streams cannot deadlock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.queries import event_log as q
from xfchat.db.queries import messages_send as send_q
from xfchat.db.queries.event_log import EventPosition

NOTIFY_CHANNEL = "xfchat_events"
EPHEMERAL_CHANNEL = "xfchat_ephemeral"


class StreamKind(enum.StrEnum):
    USER = "user"
    CHANNEL = "channel"
    SERVER = "server"


@dataclass(frozen=True, order=True)
class Stream:
    kind: StreamKind
    entity_id: UUID

    @classmethod
    def user(cls, user_id: UUID) -> Stream:
        return cls(StreamKind.USER, user_id)

    @classmethod
    def channel(cls, channel_id: UUID) -> Stream:
        return cls(StreamKind.CHANNEL, channel_id)

    @classmethod
    def server(cls, server_id: UUID) -> Stream:
        return cls(StreamKind.SERVER, server_id)


@dataclass(frozen=True)
class Event:
    """A state change: `type` is dotted past tense (`message.created`), `stream` is
    whose followers receive it, `data` is the JSON body clients see."""

    type: str
    stream: Stream
    data: Mapping[str, Any] = field(default_factory=dict)


def encode(data: Mapping[str, Any]) -> str:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()


async def emit(conn: asyncpg.Connection, event: Event) -> EventPosition:
    """Append `event` to the log inside the caller's transaction.

    Raises:
        RuntimeError: called outside a transaction (the event would be visible before,
            or without, the write it describes).
    """
    (position,) = await emit_many(conn, [event])
    return position


async def emit_many(conn: asyncpg.Connection, events: Iterable[Event]) -> list[EventPosition]:
    """Emit several events: one statement and one notification per stream, streams
    locked in a fixed order (their events keep their relative order). Returns each
    event's position, in the order given."""
    if not conn.is_in_transaction():
        raise RuntimeError("emit() must run inside the writer's transaction")
    events = list(events)
    by_stream: dict[Stream, list[int]] = {}
    for index, event in enumerate(events):
        by_stream.setdefault(event.stream, []).append(index)
    positions: dict[int, EventPosition] = {}
    for stream in sorted(by_stream):
        indexes = by_stream[stream]
        last = await q.insert_events(
            conn,
            kind=stream.kind.value,
            entity_id=stream.entity_id,
            types=[events[i].type for i in indexes],
            datas=[encode(events[i].data) for i in indexes],
            channel=NOTIFY_CHANNEL,
        )
        first = last.pos - len(indexes) + 1
        for offset, i in enumerate(indexes):
            positions[i] = EventPosition(last.stream_id, first + offset)
    return [positions[i] for i in range(len(events))]


async def signal_ephemeral(conn: asyncpg.Connection, event: Event) -> None:
    """Announce something that is not kept (typing): no position, no resume."""
    payload = encode(
        {
            "k": event.stream.kind.value,
            "e": str(event.stream.entity_id),
            "t": event.type,
            "d": dict(event.data),
        }
    )
    await q.notify(conn, channel=EPHEMERAL_CHANNEL, payload=payload)


async def append_messages(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    created_at: datetime,
    ids: list[UUID],
    author_ids: list[UUID],
    contents: list[str],
    nonces: list[str | None],
    reply_to_ids: list[UUID | None],
    mentions: list[list[UUID]],
    bodies: Sequence[Mapping[str, Any]],
) -> int | None:
    """Insert messages and emit their `message.created` events in one statement (the
    send path's emit: the same positions and notifications as `emit_many`, one round
    trip fewer). Each body's "seq" must be 0: the statement fills in the sequence number
    it takes. Returns the last sequence number taken, or None if an author is no longer
    a participant (nothing written)."""
    if not conn.is_in_transaction():
        raise RuntimeError("append_messages() must run inside the writer's transaction")
    return await send_q.insert_messages_and_events(
        conn,
        channel_id=channel_id,
        created_at=created_at,
        ids=ids,
        author_ids=author_ids,
        contents=contents,
        nonces=nonces,
        reply_to_ids=reply_to_ids,
        mentions=mentions,
        event_datas=[encode(b) for b in bodies],
        notify_channel=NOTIFY_CHANNEL,
    )
