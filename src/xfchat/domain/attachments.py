"""Attachments: the files of a message, up to MAX_FILES, stored with it (sending:
domain/messages_upload.py), served with the read permission of its channel.

What a file is said to be: an image is told by its bytes (PNG, JPEG, GIF or WebP,
whatever the client called it) and must decode within the image bounds; any other
file keeps the type its uploader gave only when that type is on ALLOWED_TYPES, and
is `application/octet-stream` otherwise. Every download goes out with `nosniff` and a
sandboxing CSP; only images are shown inline, the rest is `attachment` with a safe
file name.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import IO
from urllib.parse import quote
from uuid import UUID

import asyncpg

from xfchat.db.queries import attachments as q
from xfchat.domain.access import access_channel
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import AttachmentPayload
from xfchat.domain.permissions import Permission
from xfchat.errors import Forbidden, NotFound

MAX_FILES = 10
MAX_FILENAME = 255
OCTET_STREAM = "application/octet-stream"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
ALLOWED_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "text/markdown",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/flac",
        "audio/aac",
        "audio/mp4",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/x-bzip2",
        "application/x-xz",
        "application/zstd",
        "application/vnd.rar",
    }
)


@dataclass(frozen=True)
class Upload:
    """A file as it arrived (spooled by the API), before we looked at it."""

    filename: str
    declared_type: str | None
    file: IO[bytes]
    size: int
    sha256: bytes
    head: bytes  # its first bytes, for telling images


@dataclass(frozen=True)
class AttachmentDraft:
    """An attachment stored in the send's transaction, to insert with its message."""

    id: UUID
    file_id: UUID
    filename: str
    content_type: str
    size: int
    sha256: str  # hex: an idempotent repeat must carry the same files
    width: int | None = None
    height: int | None = None
    thumbnail_id: UUID | None = None
    thumbnail_type: str | None = None
    thumbnail_width: int | None = None
    thumbnail_height: int | None = None


def attachment_json(d: AttachmentDraft) -> AttachmentPayload:
    """As db/queries/attachments.py's ATTACHMENTS_JSON shows a stored one."""
    url = f"{q.ATTACHMENTS_PATH}{d.id}"
    return {
        "id": str(d.id),
        "filename": d.filename,
        "content_type": d.content_type,
        "size": d.size,
        "width": d.width,
        "height": d.height,
        "url": url,
        "thumbnail_url": f"{url}/thumbnail" if d.thumbnail_id else None,
        "thumbnail_width": d.thumbnail_width,
        "thumbnail_height": d.thumbnail_height,
    }


def safe_filename(name: str) -> str:
    """The name a file is stored and offered under: its last path component, without
    control or format characters (no bidi overrides, no line breaks), without leading
    dots, at most MAX_FILENAME characters (the extension kept); "file" if nothing is
    left. (Browsers send '"', CR and LF in a form's file name as %22, %0D and %0A,
    as the HTML standard says: those three are read back.)"""
    for escaped, char in (("%22", '"'), ("%0D", "\r"), ("%0A", "\n")):
        name = name.replace(escaped, char)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    # (dots and spaces together: ". .htaccess" was ".htaccess", a helper session's find)
    name = " ".join(name.split()).lstrip(". ").strip()
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 16 else ""
        name = (stem if ext else name)[: MAX_FILENAME - len(ext) - 1 if ext else MAX_FILENAME]
        name = f"{name}.{ext}" if ext else name
    return name or "file"


def stored_type(declared: str | None) -> str:
    """A file that is not an image: the type its uploader gave, when allowed."""
    if declared is None:
        return OCTET_STREAM
    kind = declared.split(";", 1)[0].strip().lower()
    return kind if kind in ALLOWED_TYPES else OCTET_STREAM


def disposition(filename: str, content_type: str) -> str:
    """Content-Disposition: images inline, everything else a download; the name as
    ASCII (anything else, quotes and backslashes too, as "_") and as RFC 8187 UTF-8."""
    kind = "inline" if content_type in IMAGE_TYPES else "attachment"
    ascii_name = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def attachment_not_found(thumbnail: bool = False) -> NotFound:
    what = "no such attachment, or it has no thumbnail" if thumbnail else "no such attachment"
    return NotFound(what, code="ATTACHMENT_NOT_FOUND")


async def get_attachment_file(
    conn: asyncpg.Connection, actor: Actor, attachment_id: UUID, *, thumbnail: bool = False
) -> q.AttachmentFile:
    """An attachment (or its thumbnail) the actor may read: they may read its channel's
    history (checked on every download). Anything else, whether it exists or not, and
    a deleted message's files, is 404.

    Raises: NotFound (ATTACHMENT_NOT_FOUND)."""
    found = await q.get_attachment_file(conn, attachment_id=attachment_id, thumbnail=thumbnail)
    if found is None:
        raise attachment_not_found(thumbnail)
    try:
        await access_channel(conn, actor, found.channel_id, need=Permission.READ_MESSAGE_HISTORY)
    except (NotFound, Forbidden):
        raise attachment_not_found(thumbnail) from None
    return found
