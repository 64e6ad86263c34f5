"""The one storage of uploaded bytes (attachments, thumbnails, avatars, server icons):
written in the caller's transaction a chunk at a time, counted in the uploader's quota,
and read back a chunk at a time (a whole file is never held in memory), each chunk on
a pool connection of its own so a slow download holds none between chunks."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO
from uuid import UUID

import asyncpg

from xfchat.db.queries import files as files_q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import usage as usage_q
from xfchat.errors import PayloadTooLarge

CHUNK = files_q.CHUNK


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` (exclusive) of a file."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


async def _chunks_of_bytes(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), CHUNK):
        yield data[at : at + CHUNK]


async def _chunks_of_file(file: IO[bytes]) -> AsyncIterator[bytes]:
    file.seek(0)
    while chunk := file.read(CHUNK):
        yield chunk


async def store_bytes(conn: asyncpg.Connection, owner_id: UUID | None, data: bytes) -> UUID:
    """Store `data` (an avatar, a thumbnail) in the caller's transaction; its file id."""
    return await files_q.insert_file(
        conn,
        owner_id=owner_id,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).digest(),
        chunks=_chunks_of_bytes(data),
    )


async def store_file(
    conn: asyncpg.Connection, owner_id: UUID, file: IO[bytes], size: int, sha256: bytes
) -> UUID:
    """Store an upload spooled in `file` (`size` bytes), read and written a chunk at a
    time, in the caller's transaction; its file id."""
    return await files_q.insert_file(
        conn, owner_id=owner_id, size_bytes=size, sha256=sha256, chunks=_chunks_of_file(file)
    )


def _quota_lock(user_id: UUID) -> int:
    return locks_q.advisory_key(b"upload quota", user_id)


def _over_quota(total: int, quota: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"your files would take {total} bytes; your storage quota is {quota} bytes "
        "(deleting messages with files frees it)",
        code="QUOTA_EXCEEDED",
    )


async def check_room(conn: asyncpg.Connection, user_id: UUID, size: int, quota: int) -> None:
    """Before a byte of an upload is stored: refuse `size` more bytes of the user's at
    once when they cannot fit (count_upload decides, after storing: this is no lock).

    Raises: PayloadTooLarge (QUOTA_EXCEEDED)."""
    used = await files_q.sum_owned_bytes(conn, owner_id=user_id)
    if used + size > quota:
        raise _over_quota(used + size, quota)


async def count_upload(conn: asyncpg.Connection, user_id: UUID, size: int, quota: int) -> None:
    """After storing `size` bytes of the user's in the caller's transaction: refuse them
    if the user's files now take more than `quota` bytes, else count them in the user's
    usage. One user's uploads take turns here (until their COMMIT), so two at once
    cannot both fit in the last free bytes.

    Raises: PayloadTooLarge (QUOTA_EXCEEDED)."""
    await locks_q.lock_transaction(conn, key=_quota_lock(user_id))
    used = await files_q.sum_owned_bytes(conn, owner_id=user_id)
    if used > quota:
        raise _over_quota(used, quota)
    await usage_q.add_usage(
        conn,
        user_ids=[user_id],
        days=[datetime.now(UTC).date()],
        requests=[0],
        messages_sent=[0],
        bytes_uploaded=[size],
    )


async def read(
    pool: asyncpg.Pool, file_id: UUID, span: ByteRange, *, channel_id: UUID | None = None
) -> AsyncIterator[bytes]:
    """The bytes of `span`, a chunk at a time. A file deleted meanwhile ends early (the
    response is then shorter than its Content-Length, which a client sees as a failed
    download), and so does one attached in `channel_id` when that channel is deleted
    (its files go with the purge after it: migration 0055)."""
    at = span.start
    while at < span.end:
        n, offset = divmod(at, CHUNK)
        length = min(CHUNK - offset, span.end - at)
        async with pool.acquire() as conn:
            data = await files_q.get_chunk(
                conn, file_id=file_id, n=n, start=offset, length=length, channel_id=channel_id
            )
        if not data:
            return
        yield data
        at += len(data)
