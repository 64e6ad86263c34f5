"""Stored images (avatars, server icons): the server's re-encodings, served as they are.
Their bytes are a file of the shared storage (db/queries/files.py); deleting an image
deletes its file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe, one

INFO_COLUMNS = (
    "id, owner_id, purpose, content_type, size_bytes, sha256, width, height, created_at, file_id"
)


@dataclass(frozen=True)
class MediaInfo:
    id: UUID
    owner_id: UUID
    purpose: str
    content_type: str
    size_bytes: int
    sha256: bytes
    width: int
    height: int
    created_at: datetime
    file_id: UUID


async def insert_media(
    conn: asyncpg.Connection,
    *,
    owner_id: UUID,
    purpose: str,
    content_type: str,
    file_id: UUID,
    size_bytes: int,
    sha256: bytes,
    width: int,
    height: int,
) -> MediaInfo:
    """An image whose bytes are the stored file `file_id` (its id is the file's)."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO media (id, owner_id, purpose, content_type, size_bytes, sha256, width, height,
                           file_id)
        VALUES ($7, $1, $2, $3, $4, $5, $6, $8, $7)
        RETURNING {INFO_COLUMNS}
        """,
        owner_id,
        purpose,
        content_type,
        size_bytes,
        sha256,
        width,
        file_id,
        height,
    )
    return one(MediaInfo, record)


_MEDIA_INFO = f"SELECT {INFO_COLUMNS} FROM media WHERE id = $1"


async def get_media_info(
    conn: asyncpg.Connection, *, media_id: UUID, share: bool = False
) -> MediaInfo | None:
    """With `share`, the row is locked FOR SHARE (a server about to show it: its deletion
    by delete_uploaded_icon waits, and then sees the server showing it)."""
    record = await conn.fetchrow(_MEDIA_INFO + (" FOR SHARE" if share else ""), media_id)
    return maybe(MediaInfo, record)


async def delete_media_of_owner(
    conn: asyncpg.Connection, *, owner_id: UUID, purpose: str, keep: UUID | None = None
) -> int:
    """Every image of one owner for one purpose, except `keep`; returns how many."""
    status = await conn.execute(
        "DELETE FROM media WHERE owner_id = $1 AND purpose = $2 AND ($3::uuid IS NULL OR id <> $3)",
        owner_id,
        purpose,
        keep,
    )
    return int(status.split()[-1])


async def delete_uploaded_icon(conn: asyncpg.Connection, *, url: str | None) -> bool:
    """Delete the server icon `url` points at when it is one uploaded here and no
    server shows it any more (an image stored for another purpose, one another server
    points at, or any other URL, is left alone)."""
    prefix = "/api/media/"
    if url is None or not url.startswith(prefix):
        return False
    try:
        media_id = UUID(url[len(prefix) :])
    except ValueError:
        return False
    # The image is locked first, and looked at by a statement of its own, which under
    # READ COMMITTED sees what committed while it waited: two servers that stop showing
    # it at once take turns, and the second sees the first's change (in one statement
    # each saw the other still showing it, and neither deleted it).
    locked = await conn.fetchval(
        "SELECT id FROM media WHERE id = $1 AND purpose = 'icon' FOR UPDATE", media_id
    )
    if locked is None:
        return False
    status = await conn.execute(
        """
        DELETE FROM media WHERE id = $1 AND purpose = 'icon'
          AND NOT EXISTS (SELECT 1 FROM servers WHERE icon_url IN ($2, $3))
        """,
        media_id,
        url,
        f"{prefix}{media_id}",  # (the form every URL of ours is written in)
    )
    return bool(status != "DELETE 0")
