"""THE ONLY PLACE WITH SQL: one module per table family.

A query function is `async def verb_noun(conn, *, ...)`, uses `$n` placeholders only,
never opens a transaction, and returns typed rows. The statements that append events
and queue their notifications (`event_log.insert_events`, `event_log.insert_events_many`,
`event_log.notify`, `messages_send.insert_messages_and_events`,
`messages_send.send_batch_fast`) are called only from `domain/events.py` and the send
batch (tests/unit/test_house_rules.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar


class _FromRecord(Protocol):
    def __init__(self, **kwargs: Any) -> None: ...


T = TypeVar("T", bound=_FromRecord)


def one(cls: type[T], record: Any) -> T:
    """A typed row from an asyncpg record."""
    return cls(**dict(record))


def maybe(cls: type[T], record: Any) -> T | None:
    return None if record is None else cls(**dict(record))


def many(cls: type[T], records: Iterable[Any]) -> list[T]:
    """Typed rows; a NamedTuple whose fields are the columns, in order, is made from the
    values alone (ten times faster than by name: the access seam makes hundreds)."""
    records = list(records)
    fields = getattr(cls, "_fields", None)
    if records and fields is not None and tuple(records[0].keys()) == fields:
        return [cls(*r) for r in records]
    return [cls(**dict(r)) for r in records]
