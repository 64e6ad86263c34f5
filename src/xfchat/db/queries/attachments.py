"""A message's files (their bytes: db/queries/files.py)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe

ATTACHMENTS_PATH = "/api/attachments/"
# A message's attachments (`m`) as a JSON array in position order; the same shape as
# domain/attachments.py's attachment_json.
ATTACHMENTS_JSON = f"""
    COALESCE((
        SELECT json_agg(json_build_object(
            'id', a.id, 'filename', a.filename, 'content_type', a.content_type,
            'size', a.size_bytes, 'width', a.width, 'height', a.height,
            'url', '{ATTACHMENTS_PATH}' || a.id,
            'thumbnail_url', CASE WHEN a.thumbnail_id IS NULL THEN NULL
                                  ELSE '{ATTACHMENTS_PATH}' || a.id || '/thumbnail' END,
            'thumbnail_width', a.thumbnail_width, 'thumbnail_height', a.thumbnail_height)
            ORDER BY a.position)
        FROM attachments a WHERE a.message_id = m.id
    ), '[]'::json)
"""


@dataclass(frozen=True)
class AttachmentFile:
    """What serving an attachment (or its thumbnail) needs."""

    id: UUID
    channel_id: UUID
    filename: str
    content_type: str
    file_id: UUID
    size_bytes: int
    sha256: bytes


async def insert_attachments(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    channel_id: UUID,
    ids: list[UUID],
    file_ids: list[UUID],
    thumbnail_ids: list[UUID | None],
    thumbnail_types: list[str | None],
    filenames: list[str],
    content_types: list[str],
    sizes: list[int],
    widths: list[int | None],
    heights: list[int | None],
    thumbnail_widths: list[int | None],
    thumbnail_heights: list[int | None],
) -> None:
    """A message's files, in order (position = index)."""
    await conn.execute(
        """
        INSERT INTO attachments (id, message_id, channel_id, position, file_id, thumbnail_id,
                                 thumbnail_type, filename, content_type, size_bytes, width,
                                 height, thumbnail_width, thumbnail_height)
        SELECT a.id, $1, $2, a.ord - 1, a.file_id, a.thumbnail_id, a.tt, a.filename,
               a.content_type, a.size_bytes, a.width, a.height, a.tw, a.th
        FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[],
                    $9::bigint[], $10::int[], $11::int[], $12::int[], $13::int[])
             WITH ORDINALITY AS a (id, file_id, thumbnail_id, tt, filename, content_type,
                                   size_bytes, width, height, tw, th, ord)
        """,
        message_id,
        channel_id,
        ids,
        file_ids,
        thumbnail_ids,
        thumbnail_types,
        filenames,
        content_types,
        sizes,
        widths,
        heights,
        thumbnail_widths,
        thumbnail_heights,
    )


async def get_attachment_file(
    conn: asyncpg.Connection, *, attachment_id: UUID, thumbnail: bool = False
) -> AttachmentFile | None:
    """An attachment of a live message with its file (or its thumbnail's: then the
    thumbnail's type); None if there is no such attachment (or thumbnail)."""
    record = await conn.fetchrow(
        """
        SELECT a.id, a.channel_id, a.filename,
               CASE WHEN $2 THEN a.thumbnail_type ELSE a.content_type END AS content_type,
               f.id AS file_id, f.size_bytes, f.sha256
        FROM attachments a
        JOIN files f ON f.id = CASE WHEN $2 THEN a.thumbnail_id ELSE a.file_id END
        WHERE a.id = $1
        """,
        attachment_id,
        thumbnail,
    )
    return maybe(AttachmentFile, record)


async def has_attachments(conn: asyncpg.Connection, *, message_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM attachments WHERE message_id = $1)", message_id
        )
    )
