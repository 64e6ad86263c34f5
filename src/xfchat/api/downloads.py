"""Serving a stored file (an attachment, its thumbnail, an avatar, an icon): streamed a
chunk at a time from PostgreSQL, with HEAD, ETag / If-None-Match, and one byte range
(`Range: bytes=a-b`, `a-` or `-n`; 206 with Content-Range, 416 RANGE_NOT_SATISFIABLE
when it starts past the end or is `bytes=-0`, the last 0 bytes; several ranges, or a malformed header, get the whole file, as RFC 9110 allows)."""

from __future__ import annotations

import re
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from xfchat.domain import files
from xfchat.errors import RangeNotSatisfiable

RANGE = re.compile(r"bytes=(\d*)-(\d*)")
FAR = 10**19  # a position of more than 19 digits: past any file's end
# Headers every stored file goes out with: the browser takes the type we say (never
# guesses one), and a file opened as a page can run nothing and reach nothing.
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Accept-Ranges": "bytes",
}
BYTES: dict[str, Any] = {}  # a response of raw bytes, described by its media type alone


def etag_of(sha256: bytes) -> str:
    return f'"{sha256.hex()}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match uses."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def requested_range(header: str | None, size: int) -> files.ByteRange | str | None:
    """The one range a Range header asks for; None for the whole file (no header, a
    malformed one, or several ranges); "unsatisfiable" when it starts past the end, or asks for the last 0 bytes."""
    if header is None or size == 0:  # (an empty file has no range to give)
        return None
    found = RANGE.fullmatch(header.strip())
    if found is None:
        return None
    first, last = (_position(g) for g in found.groups())
    if first is None and last is None:
        return None
    if first is None:  # the last n bytes
        assert last is not None
        return files.ByteRange(max(0, size - last), size) if last else "unsatisfiable"
    start = first
    end = min(size, last + 1) if last is not None else size
    if last is not None and last < start:
        return None  # invalid: ignored
    if start >= size:
        return "unsatisfiable"
    return files.ByteRange(start, end)


def _position(digits: str) -> int | None:
    """A position of a Range header (None if left out); one of more than 19 digits
    (leading zeros aside: `bytes=000...01-` is byte 1) is FAR, past every file's end."""
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else FAR


class Stored(Protocol):
    """A stored file's facts (an attachment's, an image's)."""

    @property
    def file_id(self) -> UUID: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def sha256(self) -> bytes: ...


def file_response(
    request: Request,
    pool: asyncpg.Pool,
    stored: Stored,
    content_type: str,
    headers: dict[str, str],
    *,
    channel_id: UUID | None = None,
) -> Response:
    """The file (or the range of it asked for) as a streamed response; one attached in
    `channel_id` ends early if that channel is deleted meanwhile."""
    size, file_id = stored.size_bytes, stored.file_id
    etag = etag_of(stored.sha256)
    out = {**SAFE_HEADERS, **headers, "ETag": etag}
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=out)
    if_range = request.headers.get("if-range")
    span = requested_range(request.headers.get("range") if if_range in (None, etag) else None, size)
    if span == "unsatisfiable":
        raise RangeNotSatisfiable(
            f"the range asked for holds no byte of the file ({size} bytes)",
            headers={"Content-Range": f"bytes */{size}"},
        )
    status = 200
    if isinstance(span, files.ByteRange):
        status = 206
        out["Content-Range"] = f"bytes {span.start}-{span.end - 1}/{size}"
    else:
        span = files.ByteRange(0, size)
    out["Content-Length"] = str(span.length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=out, media_type=content_type)
    return StreamingResponse(
        files.read(pool, file_id, span, channel_id=channel_id),
        status_code=status,
        headers=out,
        media_type=content_type,
    )
