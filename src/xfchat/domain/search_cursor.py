"""The opaque cursor of a search page: where the next page starts, bound to the
searcher and the query it came from by an HMAC under the server's key. A cursor is
hostile input: it is parsed strictly, and one made for another user, query, sort or
scope, or by anyone but the server, is refused rather than half-obeyed (so the total it
carries is the one the server counted for this searcher)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import orjson

from xfchat.errors import BadRequest

MAX_CURSOR_CHARS = 400


@dataclass(frozen=True)
class Cursor:
    snapshot: tuple[datetime, UUID]  # the newest match when the search began
    last: tuple[float, datetime, UUID]  # the last result given: rank, time, id
    total: int
    capped: bool
    # Which channels were searched when `total` was counted (`channels_digest`); None
    # in a cursor from before it was written (its total is counted again).
    channels: str | None = None


def channels_digest(channel_ids: list[UUID]) -> str:
    """A short digest of a set of channels: whether a later page searches the same."""
    return hashlib.sha256(b"".join(c.bytes for c in sorted(channel_ids))).hexdigest()[:16]


def _bad() -> BadRequest:
    return BadRequest(
        "this cursor is not one this search gave", code="INVALID_CURSOR", field="cursor"
    )


def _digest(key: bytes, fingerprint: list[str]) -> str:
    message = "\x00".join(fingerprint).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _signed(fingerprint: list[str], rest: list[object]) -> list[str]:
    """What a cursor's HMAC covers: the search, and (in a cursor that names the channels
    it counted in) everything the cursor says. A cursor from before that covers the
    search only (read as one that names no channels: its total is counted again)."""
    return fingerprint if len(rest) == 7 else [*fingerprint, orjson.dumps(rest).decode()]


def write_cursor(cursor: Cursor, key: bytes, fingerprint: list[str]) -> str:
    rest: list[object] = [
        cursor.snapshot[0].isoformat(),
        str(cursor.snapshot[1]),
        cursor.last[0],
        cursor.last[1].isoformat(),
        str(cursor.last[2]),
        cursor.total,
        cursor.capped,
        *([cursor.channels] if cursor.channels is not None else []),
    ]
    body = [_digest(key, _signed(fingerprint, rest)), *rest]
    return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


def read_cursor(text: str, key: bytes, fingerprint: list[str]) -> Cursor:
    """Raises: BadRequest (INVALID_CURSOR)."""
    if len(text) > MAX_CURSOR_CHARS:
        raise _bad()
    try:
        body = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(body, list) or len(body) not in (8, 9):
            raise ValueError("shape")
        digest, snap_at, snap_id, rank, last_at, last_id, total, capped = body[:8]
        channels = body[8] if len(body) == 9 else None
        if channels is not None and (not isinstance(channels, str) or len(channels) != 16):
            raise ValueError("channels")
        if not isinstance(digest, str) or not hmac.compare_digest(
            digest, _digest(key, _signed(fingerprint, body[1:]))
        ):
            raise ValueError("another search")
        if not isinstance(rank, (int, float)) or isinstance(rank, bool) or not math.isfinite(rank):
            raise ValueError("rank")
        if not isinstance(total, int) or isinstance(total, bool) or not 0 <= total <= 10**6:
            raise ValueError("total")
        if not isinstance(capped, bool):
            raise ValueError("capped")
        snapshot = (_time(snap_at), UUID(snap_id))
        last = (float(rank), _time(last_at), UUID(last_id))
    except (ValueError, TypeError, AttributeError):
        raise _bad() from None
    return Cursor(snapshot, last, total, capped, channels)


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or not 1970 <= parsed.year <= 9998:
        raise ValueError(value)
    return parsed.astimezone(UTC)  # (a year in range in any offset is one in UTC too)
