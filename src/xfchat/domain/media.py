"""Avatars and server icons: an uploaded image goes through the image pipeline
(domain/images.py), and only our re-encoding (square, at most 512x512, PNG or JPEG, no
metadata) is stored, in the storage every upload shares (domain/files.py), counted in
the uploader's quota. Served publicly by id (an <img> cannot send a token; ids are
random).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries import media as media_q
from xfchat.db.queries import users as users_q
from xfchat.domain import files, profile, servers
from xfchat.domain.access import access_server
from xfchat.domain.accounts import Actor, session_ended
from xfchat.domain.event_payloads import ServerPayload
from xfchat.domain.images import EncodedImage, Slots, encode_avatar, run_image_job_by
from xfchat.domain.permissions import Permission
from xfchat.errors import NotFound, PayloadTooLarge

MEDIA_PATH = "/api/media/"


def media_url(media_id: UUID) -> str:
    return f"{MEDIA_PATH}{media_id}"


# -- Avatars ---------------------------------------------------------------------------


async def set_avatar(
    pool: asyncpg.Pool,
    actor: Actor,
    data: bytes,
    *,
    max_bytes: int,
    quota: int,
    slots: Slots,
    deadline_s: float,
) -> users_q.UserRow:
    """Make an uploaded image the actor's avatar: re-encode it (holding no database
    connection meanwhile), then in one transaction store it, point avatar_url at it
    (everyone who sees the user is told), delete the previous one (its URL answers 404
    from then on), and count the stored bytes in the actor's usage.

    Raises:
        PayloadTooLarge: `data` is over `max_bytes` (PAYLOAD_TOO_LARGE), or over the
            user's quota with their other files (QUOTA_EXCEEDED). BadRequest: INVALID_IMAGE.
        ServiceUnavailable: IMAGE_BUSY, the image not re-encoded within `deadline_s`.
    """
    _check_size(data, max_bytes)
    image = await run_image_job_by(deadline_s, slots, encode_avatar, data)
    async with pool.acquire() as conn, conn.transaction():
        stored = await _store(conn, actor, "avatar", image)
        # The user's row is locked from here to COMMIT, so concurrent changes of the
        # avatar take turns and each deletes whatever the one before it stored.
        user = await profile.set_avatar_url(conn, actor, media_url(stored))
        await media_q.delete_media_of_owner(
            conn, owner_id=actor.user_id, purpose="avatar", keep=stored
        )
        # Counted with the previous one gone: a replacement costs only the difference.
        await files.count_upload(conn, actor.user_id, len(image.data), quota)
    return user


def _check_size(data: bytes, max_bytes: int) -> None:
    """Raises: PayloadTooLarge."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is larger than {max_bytes} bytes")


async def _store(conn: asyncpg.Connection, actor: Actor, purpose: str, image: EncodedImage) -> UUID:
    """Store an encoded upload of the actor's in the caller's transaction (which then
    counts it: files.count_upload, once what it replaces is gone); its id."""
    file_id = await files.store_bytes(conn, actor.user_id, image.data)
    stored = await media_q.insert_media(
        conn,
        owner_id=actor.user_id,
        purpose=purpose,
        content_type=image.content_type,
        file_id=file_id,
        size_bytes=len(image.data),
        sha256=image.sha256,
        width=image.width,
        height=image.height,
    )
    return stored.id


async def clear_avatar(conn: asyncpg.Connection, actor: Actor) -> users_q.UserRow:
    """Remove the actor's avatar (an uploaded one is deleted: its URL answers 404).

    Raises:
        NotFound: USER_NOT_FOUND. Unauthorized: SESSION_REVOKED (the account deleted).
    """
    async with conn.transaction():
        # The row lock first: an upload committing meanwhile is then either cleared
        # here too, or comes after this and stays.
        user = await users_q.lock_user(conn, user_id=actor.user_id)
        if user is None:
            raise NotFound("no such user", code="USER_NOT_FOUND")
        if user.deleted_at is not None:  # (its avatar went with it)
            raise session_ended()
        if user.avatar_url is not None:  # (none to clear: nobody is told)
            user = await profile.set_avatar_url(conn, actor, None)
        await media_q.delete_media_of_owner(conn, owner_id=actor.user_id, purpose="avatar")
    return user


# -- Server icons ----------------------------------------------------------------------


async def set_server_icon(
    pool: asyncpg.Pool,
    actor: Actor,
    server_id: UUID,
    data: bytes,
    *,
    max_bytes: int,
    quota: int,
    slots: Slots,
    deadline_s: float,
    reason: str | None,
) -> ServerPayload:
    """Make an uploaded image a server's icon (MANAGE_SERVER), as an avatar is made:
    the permission is checked before the image is decoded, and again, with the image
    stored, the icon changed (a previously uploaded icon deleted), audited and
    announced, in one transaction.

    Raises: PayloadTooLarge (PAYLOAD_TOO_LARGE, QUOTA_EXCEEDED); BadRequest (INVALID_IMAGE);
    NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); ServiceUnavailable
    (IMAGE_BUSY)."""
    _check_size(data, max_bytes)
    async with pool.acquire() as conn:
        await access_server(conn, actor, server_id, need=Permission.MANAGE_SERVER)
    image = await run_image_job_by(deadline_s, slots, encode_avatar, data)
    async with pool.acquire() as conn, conn.transaction():
        stored = await _store(conn, actor, "icon", image)
        server = await servers.update_server(  # (deletes the icon it replaces, if unshared)
            conn, actor, server_id, fields={"icon_url": media_url(stored)}, reason=reason
        )
        await files.count_upload(conn, actor.user_id, len(image.data), quota)
        return server


# -- Serving ---------------------------------------------------------------------------


async def get_media_info(conn: asyncpg.Connection, media_id: UUID) -> media_q.MediaInfo:
    """A stored image's facts (its bytes: domain/files.py, by its file_id).

    Raises:
        NotFound: no such image.
    """
    item = await media_q.get_media_info(conn, media_id=media_id)
    if item is None:
        raise NotFound("no such image")
    return item
