"""Sending a message with files: one transaction stores the files (a chunk at a time),
counts them in the sender's quota, and writes the message with them through the same
batch writer every send uses (domain/messages_send.py: permission, replies,
idempotency, rate limits, sequence number, event), so a message and its files are
committed together or not at all. Before that: an image (JPEG, PNG, GIF or WebP)
loses its metadata (in a thread,
in a turn of the process's image slots, as a thumbnail is made), a repeat (its
id or nonce already held) is answered without storing anything, files that cannot fit
in the quota are refused, and images are looked at (and thumbnailed), in a thread,
holding no database connection; the transaction then waits for a turn of the
process's few that store files."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from uuid import UUID

import asyncpg

from xfchat.db.queries import messages_send as send_q
from xfchat.domain import files, images
from xfchat.domain.accounts import Actor
from xfchat.domain.attachments import (
    MAX_FILES,
    AttachmentDraft,
    Upload,
    safe_filename,
    stored_type,
)
from xfchat.domain.messages import check_content, message_channel
from xfchat.domain.messages_batch import SendRequest, SendResult, check_nonce
from xfchat.domain.messages_send import write_batch
from xfchat.domain.messages_writer import RETRIED, RETRIES, channel_busy
from xfchat.domain.permissions import Permission
from xfchat.errors import BadRequest, PayloadTooLarge, XFChatError


class _Repeat(Exception):
    """An idempotent repeat: undo what this attempt stored, answer with the stored one."""

    def __init__(self, result: SendResult) -> None:
        self.result = result


async def check_attach(conn: asyncpg.Connection, actor: Actor, channel_id: UUID) -> None:
    """Whether the actor may send files here (SEND_MESSAGES and ATTACH_FILES), asked
    before a byte of them is read (the send asks again, in its transaction).

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS,
    CANNOT_MESSAGE_USER, TIMED_OUT); BadRequest (NOT_A_TEXT_CHANNEL)."""
    await message_channel(
        conn, actor, channel_id, Permission.SEND_MESSAGES | Permission.ATTACH_FILES
    )


def check_uploads(content: str, uploads: list[Upload], max_bytes: int) -> None:
    """Raises: BadRequest (TOO_MANY_FILES; check_content's: MESSAGE_TOO_LONG,
    EMPTY_MESSAGE, TOO_MANY_COMBINING_MARKS); PayloadTooLarge (FILE_TOO_LARGE)."""
    if len(uploads) > MAX_FILES:
        raise BadRequest(
            f"a message carries at most {MAX_FILES} files", code="TOO_MANY_FILES", field="files"
        )
    for upload in uploads:
        if upload.size > max_bytes:
            raise file_too_large(max_bytes)
    check_content(content, files=bool(uploads))


def file_too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a file may be at most {max_bytes} bytes", code="FILE_TOO_LARGE", field="files"
    )


async def _without_metadata(upload: Upload, slots: images.Slots) -> Upload:
    """A JPEG, PNG, GIF or WebP without its metadata (images.without_metadata: EXIF and
    its GPS position, XMP, comments, text; the pixels untouched), rewritten in its spool;
    other files as they came. It takes one of the image slots, as a thumbnail does (it
    holds the file, read only then, and a core too).

    Raises: BadRequest (INVALID_IMAGE: a damaged image)."""
    if not images.looks_like_image(upload.head):  # (each of them has its metadata stripped)
        return upload
    clean = await images.run_image_job_on(slots, _stripped, upload.file)
    if clean is None:  # (nothing to drop)
        return upload
    upload.file.seek(0)
    upload.file.write(clean)
    upload.file.truncate()
    return replace(
        upload,
        size=len(clean),
        sha256=hashlib.sha256(clean).digest(),
        head=clean[: len(upload.head)],
    )


def _stripped(data: bytes) -> bytes | None:
    """images.without_metadata's bytes, None if they are `data`'s (nothing dropped)."""
    clean = images.without_metadata(data)
    return None if clean == data else clean


async def _look_at(upload: Upload, slots: images.Slots) -> images.Thumbnailed | None:
    """An image's facts and thumbnail (None: not an image).

    Raises: BadRequest (INVALID_IMAGE: damaged, or a decompression bomb)."""
    if not images.looks_like_image(upload.head):
        return None
    return await images.run_image_job_on(slots, images.make_thumbnail, upload.file)


def _draft(upload: Upload, file_id: UUID) -> AttachmentDraft:
    return AttachmentDraft(
        id=uuid.uuid4(),
        file_id=file_id,
        filename=safe_filename(upload.filename),
        content_type=stored_type(upload.declared_type),
        size=upload.size,
        sha256=upload.sha256.hex(),
    )


async def _store(
    conn: asyncpg.Connection,
    req: SendRequest,
    uploads: list[Upload],
    looks: list[images.Thumbnailed | None],
) -> list[AttachmentDraft]:
    drafts = []
    for upload, look in zip(uploads, looks, strict=True):
        file_id = await files.store_file(
            conn, req.actor.user_id, upload.file, upload.size, upload.sha256
        )
        draft = _draft(upload, file_id)
        if look is not None:
            thumb = look.thumbnail
            draft = replace(
                draft,
                content_type=look.content_type,
                width=look.width,
                height=look.height,
                thumbnail_id=await files.store_bytes(conn, req.actor.user_id, thumb.data),
                thumbnail_type=thumb.content_type,
                thumbnail_width=thumb.width,
                thumbnail_height=thumb.height,
            )
        drafts.append(draft)
    return drafts


async def _held(conn: asyncpg.Connection, req: SendRequest) -> bool:
    """Whether a message holds the send's id (a PUT) or nonce already: the send is then
    a repeat of it, or a conflict with it, and writes nothing."""
    if not req.client_chose_id and not req.nonce:
        return False
    return bool(
        await send_q.count_messages_holding(
            conn,
            message_id=req.message_id if req.client_chose_id else None,
            channel_id=req.channel_id,
            author_id=req.actor.user_id,
            nonce=req.nonce,
        )
    )


async def _answer_held(
    pool: asyncpg.Pool, req: SendRequest, uploads: list[Upload]
) -> SendResult | None:
    """The answer to a send whose id or nonce a message holds, found with none of its
    files stored (a repeat is told by their SHA-256, and writes nothing; a conflict
    raises). None when the send would be written after all (that message purged with
    its deleted channel meanwhile, migration 0055): its drafts name no stored file, so
    the write rolls back."""
    drafts = [_draft(upload, uuid.uuid4()) for upload in uploads]  # (never stored)
    try:
        async with pool.acquire() as conn, conn.transaction():
            (outcome,) = await write_batch(conn, req.channel_id, [replace(req, attachments=drafts)])
            if isinstance(outcome, XFChatError):
                raise outcome
            if outcome.created:
                raise _Fresh
    except (_Fresh, asyncpg.ForeignKeyViolationError, *RETRIED):
        return None
    return outcome


class _Fresh(Exception):
    """A send taken for a repeat that is not one: roll back, and store its files."""


async def send_with_files(
    pool: asyncpg.Pool,
    req: SendRequest,
    uploads: list[Upload],
    *,
    max_bytes: int,
    quota: int,
    slots: images.Slots,
    storing: Callable[[], AbstractAsyncContextManager[None]],
) -> SendResult:
    """Send `req` with `uploads` as its attachments (SEND_MESSAGES and ATTACH_FILES):
    committed together, or nothing stored. A repeat (its id or nonce held) is answered
    without storing its files, and one over the quota refused before they are stored.

    `storing` gives the turn of a transaction that stores files (MessageWriter.storing).

    Raises: whatever a send raises; BadRequest (TOO_MANY_FILES, INVALID_IMAGE);
    PayloadTooLarge (FILE_TOO_LARGE, QUOTA_EXCEEDED); ServiceUnavailable (CHANNEL_BUSY)."""
    check_uploads(req.content, uploads, max_bytes)
    check_nonce(req.nonce)
    # (before the repeat check: a repeat's files are told by the SHA-256 of what we store)
    uploads = [await _without_metadata(upload, slots) for upload in uploads]
    async with pool.acquire() as conn:
        held = await _held(conn, req)
    if held and (answer := await _answer_held(pool, req, uploads)) is not None:
        return answer
    async with pool.acquire() as conn:
        # Before a byte is stored (a refusal after storing cost the whole COPY in WAL);
        # count_upload decides, in the transaction, with the thumbnails.
        await files.check_room(conn, req.actor.user_id, sum(u.size for u in uploads), quota)
    looks = [await _look_at(u, slots) for u in uploads]
    return await _store_and_write(pool, req, uploads, looks, quota, storing)


async def _store_and_write(
    pool: asyncpg.Pool,
    req: SendRequest,
    uploads: list[Upload],
    looks: list[images.Thumbnailed | None],
    quota: int,
    storing: Callable[[], AbstractAsyncContextManager[None]],
) -> SendResult:
    """Store the files and write the message in one transaction, in a turn of
    `storing` (a bound on the connections held for a whole COPY)."""
    for attempt in range(1, RETRIES + 1):
        try:
            async with storing(), pool.acquire() as conn, conn.transaction():
                drafts = await _store(conn, req, uploads, looks)
                (outcome,) = await write_batch(
                    conn, req.channel_id, [replace(req, attachments=drafts)]
                )
                if isinstance(outcome, XFChatError):
                    raise outcome
                if not outcome.created:
                    raise _Repeat(outcome)
                # Only a message written counts (a repeat near the quota is still 200).
                # Its thumbnails count too: every stored byte is someone's.
                thumbnails = sum(len(look.thumbnail.data) for look in looks if look is not None)
                await files.count_upload(
                    conn, req.actor.user_id, sum(u.size for u in uploads) + thumbnails, quota
                )
            return outcome
        except _Repeat as repeat:
            return repeat.result
        except RETRIED:
            if attempt == RETRIES:
                raise channel_busy() from None
    raise AssertionError("unreachable")
