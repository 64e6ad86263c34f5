"""Stored files (attachments, thumbnails, avatars, icons): a `files` row and its bytes in
chunks of at most CHUNK bytes, written by COPY as they are read and read a chunk at a
time. Files are never deleted here: deleting what shows one (an attachment, an avatar)
deletes it (the triggers of migration 0019)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from uuid import UUID

import asyncpg

CHUNK = 256 * 1024  # bytes per file_chunks row (the table's CHECK says the same)


async def insert_file(
    conn: asyncpg.Connection,
    *,
    owner_id: UUID | None,
    size_bytes: int,
    sha256: bytes,
    chunks: AsyncIterable[bytes],
) -> UUID:
    """Store a file whose bytes `chunks` yields (each 1 to CHUNK bytes; they must add up
    to `size_bytes`), streamed to PostgreSQL by COPY; its id. In the caller's
    transaction."""
    file_id: UUID = await conn.fetchval(
        "INSERT INTO files (owner_id, size_bytes, sha256) VALUES ($1, $2, $3) RETURNING id",
        owner_id,
        size_bytes,
        sha256,
    )

    async def records() -> AsyncIterator[tuple[UUID, int, bytes]]:
        n = 0
        async for chunk in chunks:
            yield file_id, n, chunk
            n += 1

    await conn.copy_records_to_table(
        "file_chunks", records=records(), columns=["file_id", "n", "data"]
    )
    return file_id


async def get_chunk(
    conn: asyncpg.Connection,
    *,
    file_id: UUID,
    n: int,
    start: int = 0,
    length: int = CHUNK,
    channel_id: UUID | None = None,
) -> bytes | None:
    """Bytes `start` to `start + length` of chunk `n` of a file (only the TOAST pieces
    they cover are read); None when the file (or that chunk) is gone, or `channel_id`
    (the channel it is read as attached in) is."""
    data: bytes | None = await conn.fetchval(
        """
        SELECT substring(data FROM $3 FOR $4) FROM file_chunks
        WHERE file_id = $1 AND n = $2
          AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM channels WHERE id = $5::uuid))
        """,
        file_id,
        n,
        start + 1,
        length,
        channel_id,
    )
    return data


async def sum_owned_bytes(conn: asyncpg.Connection, *, owner_id: UUID) -> int:
    """The bytes of every file counted in this user's quota."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(size_bytes), 0) FROM files WHERE owner_id = $1", owner_id
    )
    return int(total)
