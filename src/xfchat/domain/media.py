"""Uploaded images: avatars and server icons (one pipeline, one table).

An upload is only ever read, never served: Pillow decodes it (PNG, JPEG, GIF or WebP,
told apart by its bytes, whatever the client called it), and what is stored and served
is our own re-encoding of its first frame: square, at most 512x512, PNG if it has
transparency, else JPEG, with none of the upload's metadata (EXIF and its GPS position,
ICC profile, comments, text chunks). Files that are also something else (HTML, SVG,
script or PHP "polyglots") are refused anyway, as defence in depth.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from uuid import UUID

import asyncpg
from PIL import Image, ImageOps, UnidentifiedImageError

from xfchat.db.queries import media as media_q
from xfchat.db.queries import usage as usage_q
from xfchat.db.queries import users as users_q
from xfchat.domain import profile, servers
from xfchat.domain.access import access_server
from xfchat.domain.accounts import Actor
from xfchat.domain.events import ServerPayload
from xfchat.domain.permissions import Permission
from xfchat.errors import BadRequest, NotFound, PayloadTooLarge, XFChatError

log = logging.getLogger("xfchat.media")

FORMATS = ["PNG", "JPEG", "GIF", "WEBP"]
MAX_SIDE = 10_000  # pixels, either side of an upload
MAX_PIXELS = 40_000_000  # width x height of a JPEG, checked before decoding
# ... of any other format: decoded whole (a JPEG decodes at 1/8 scale), up to 8 bytes a
# pixel (16-bit RGBA), so this bounds a decode's memory.
MAX_LOSSLESS_PIXELS = 16_000_000
OUTPUT_SIDE = 512  # the stored image is at most this wide and high
JPEG_QUALITY = 90
IMAGE_JOBS = 2  # decodes running at once per process: each may hold ~300 MB and a core
MEDIA_PATH = "/api/media/"
SNIFF_WINDOW = 1024  # bytes a browser looks at when it guesses a type

# A tag that starts a document or runs code, as an HTML tokenizer (or PHP) reads it: the
# name followed by whitespace, "/" or ">". ("<svg" alone is 4 bytes: in compressed
# image data it would turn up by chance; "<svg " or "<svg>" hardly ever does.)
MARKUP = re.compile(rb"<(?:!doctype|html|head|body|script|iframe|svg|\?php)[\s/>]", re.IGNORECASE)


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: bytes


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, code="INVALID_IMAGE")


def media_url(media_id: UUID) -> str:
    return f"{MEDIA_PATH}{media_id}"


# -- The image pipeline (CPU work: run it in a thread, through run_image_job) ----------


def encode_avatar(data: bytes) -> EncodedImage:
    """Check an upload and re-encode it as a square PNG or JPEG of at most 512x512.

    Raises:
        BadRequest: INVALID_IMAGE, for anything that is not a sound PNG, JPEG, GIF or
            WebP within the size bounds (never a 500, whatever the bytes).
    """
    if MARKUP.search(data, 0, SNIFF_WINDOW):
        raise _invalid("the file holds HTML, SVG, script or PHP; upload a plain image")
    try:
        with Image.open(BytesIO(data), formats=FORMATS) as upload:
            _check_dimensions(*upload.size, jpeg=upload.format in ("JPEG", "MPO"))
            _check_structure(str(upload.format), data)
            if upload.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves
                # both sides at least OUTPUT_SIDE: far less memory and time.
                upload.draft(None, (OUTPUT_SIDE, OUTPUT_SIDE))
            upload.load()  # the first frame only, for animated GIF and WebP
            ImageOps.exif_transpose(upload, in_place=True)  # no copy of the whole image
            image = _square(_normalized(upload))
        return _encode(image)
    except XFChatError:
        raise
    except UnidentifiedImageError:
        raise _invalid("not a PNG, JPEG, GIF or WebP image") from None
    except Image.DecompressionBombError:  # Pillow's own bound, far above ours
        raise _invalid(f"the image has more than {MAX_PIXELS:,} pixels") from None
    except Exception as exc:  # whatever a hostile file makes Pillow raise
        # (OSError for truncated data, ValueError, SyntaxError, struct.error, IndexError
        # from our own structure walk, ...) is the upload's fault, never a 500.
        log.info("refused an image: %s: %s", type(exc).__name__, exc)
        raise _invalid("the image is damaged or could not be decoded") from None


def _check_dimensions(width: int, height: int, *, jpeg: bool) -> None:
    if width < 1 or height < 1:
        raise _invalid("the image has no pixels")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise _invalid(f"the image is {width}x{height}; each side may be at most {MAX_SIDE}")
    most = MAX_PIXELS if jpeg else MAX_LOSSLESS_PIXELS
    if width * height > most:
        raise _invalid(f"the image is {width}x{height}; at most {most:,} pixels")


def _check_structure(fmt: str, data: bytes) -> None:
    """Refuse data after the image's end, the other half of most polyglots. (Harmless
    to us all the same, since only our re-encoding is ever served.)

    A JPEG is the exception: cameras append data after its end on purpose (the gain map
    of an Ultra HDR photo, the other pictures of an MPO, the video of a motion photo),
    so there only markup after the end is refused."""
    if fmt in ("JPEG", "MPO"):
        if MARKUP.search(data, _jpeg_end(data)):
            raise _invalid("the file holds HTML, SVG, script or PHP after the image")
        return
    end = {"PNG": _png_end, "GIF": _gif_end, "WEBP": _webp_end}[fmt](data)
    if end < len(data):
        raise _invalid("the file holds data after the end of the image")
    if end > len(data):
        raise _invalid("the image is truncated")


def _png_end(data: bytes) -> int:
    pos = 8  # the signature
    while pos + 12 <= len(data):  # length, type, data, CRC
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos
    raise _invalid("the image is truncated")


def _gif_end(data: bytes) -> int:
    def color_table(flags: int) -> int:
        return 3 << ((flags & 7) + 1) if flags & 0x80 else 0

    def sub_blocks(pos: int) -> int:
        while size := data[pos]:
            pos += size + 1
        return pos + 1

    pos = 13 + color_table(data[10])  # header, logical screen descriptor, palette
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # the trailer
            return pos + 1
        if block == 0x21:  # an extension: label, then sub-blocks
            pos = sub_blocks(pos + 2)
        elif block == 0x2C:  # an image: descriptor, palette, LZW code size, sub-blocks
            pos = sub_blocks(pos + 10 + color_table(data[pos + 9]) + 1)
        else:
            raise _invalid("not a well-formed GIF")
    return pos  # no trailer: the decoder judges a GIF that simply stops


def _webp_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[4:8], "little")  # RIFF's size counts after itself


def _jpeg_end(data: bytes) -> int:
    """The offset just after the first image's EOI marker."""
    pos = 2  # SOI
    while True:
        if data[pos] != 0xFF:
            raise _invalid("not a well-formed JPEG")
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            continue
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            pos = _entropy_end(data, pos)


def _entropy_end(data: bytes, pos: int) -> int:
    while True:
        pos = data.index(b"\xff", pos)  # ValueError: no end at all
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart marker
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos


def _normalized(image: Image.Image) -> Image.Image:
    """The image in L, LA, RGB or RGBA, the modes LANCZOS resizes well."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey PNG
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    transparent = "transparency" in image.info
    if image.mode in ("RGBA", "LA") or (image.mode in ("L", "RGB") and not transparent):
        return image
    if image.mode == "1":
        return image.convert("L")
    if transparent or image.mode in ("PA", "RGBa", "La"):
        return image.convert("RGBA")
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _square(image: Image.Image) -> Image.Image:
    """The centred square, scaled down (never up) to at most OUTPUT_SIDE."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    target = min(side, OUTPUT_SIDE)
    return image.resize(
        (target, target),
        Image.Resampling.LANCZOS,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )


def _encode(image: Image.Image) -> EncodedImage:
    transparent = False
    if image.mode in ("RGBA", "LA"):
        lowest = image.getchannel("A").getextrema()[0]  # one band: (min, max)
        transparent = isinstance(lowest, int | float) and lowest < 255
        if not transparent:  # an alpha channel that is opaque all over
            image = image.convert(image.mode[:-1])
    # Pillow carries info (EXIF, ICC profile, comments, dpi) through resize and would
    # write some of it back out: the stored image gets none of it.
    image.info = {}
    out = BytesIO()
    if transparent:
        image.save(out, "PNG")
        content_type = "image/png"
    else:
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        content_type = "image/jpeg"
    data = out.getvalue()
    width, height = image.size
    return EncodedImage(data, content_type, width, height, hashlib.sha256(data).digest())


async def run_image_job(
    slots: asyncio.Semaphore, job: Callable[[bytes], EncodedImage], data: bytes
) -> EncodedImage:
    """Run `job` in a thread once one of `slots` (IMAGE_JOBS per process) is free. The
    slot is given back when the thread ends, not when the caller stops waiting, so
    abandoned requests cannot make more decodes run at once than the bound."""
    await slots.acquire()
    task = asyncio.ensure_future(asyncio.to_thread(job, data))

    def done(finished: asyncio.Future[EncodedImage]) -> None:
        slots.release()
        if not finished.cancelled():
            finished.exception()  # retrieved, even if nobody awaits it any more

    task.add_done_callback(done)
    return await asyncio.shield(task)


# -- Avatars ---------------------------------------------------------------------------


async def set_avatar(
    pool: asyncpg.Pool,
    actor: Actor,
    data: bytes,
    *,
    max_bytes: int,
    slots: asyncio.Semaphore,
) -> users_q.UserRow:
    """Make an uploaded image the actor's avatar: re-encode it (holding no database
    connection meanwhile), then in one transaction store it, point avatar_url at it
    (everyone who sees the user is told), delete the previous one (its URL answers 404
    from then on), and count the stored bytes in the actor's usage.

    Raises:
        PayloadTooLarge: `data` is over `max_bytes`. BadRequest: INVALID_IMAGE.
    """
    _check_size(data, max_bytes)
    image = await run_image_job(slots, encode_avatar, data)
    async with pool.acquire() as conn, conn.transaction():
        stored = await _store(conn, actor, "avatar", image)
        # The user's row is locked from here to COMMIT, so concurrent changes of the
        # avatar take turns and each deletes whatever the one before it stored.
        user = await profile.set_avatar_url(conn, actor, media_url(stored))
        await media_q.delete_media_of_owner(
            conn, owner_id=actor.user_id, purpose="avatar", keep=stored
        )
    return user


def _check_size(data: bytes, max_bytes: int) -> None:
    """Raises: PayloadTooLarge."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is larger than {max_bytes} bytes")


async def _store(conn: asyncpg.Connection, actor: Actor, purpose: str, image: EncodedImage) -> UUID:
    """Store an encoded upload of the actor's and count its bytes in their usage, in
    the caller's transaction; its id. (Counted with the write itself: uploads are few
    and rate-limited, and the in-memory counters may be lost in a crash.)"""
    stored = await media_q.insert_media(
        conn,
        owner_id=actor.user_id,
        purpose=purpose,
        content_type=image.content_type,
        data=image.data,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
    )
    await usage_q.add_usage(
        conn,
        user_ids=[actor.user_id],
        days=[datetime.now(UTC).date()],
        requests=[0],
        messages_sent=[0],
        bytes_uploaded=[len(image.data)],
    )
    return stored.id


async def clear_avatar(conn: asyncpg.Connection, actor: Actor) -> users_q.UserRow:
    """Remove the actor's avatar (an uploaded one is deleted: its URL answers 404).

    Raises:
        NotFound: USER_NOT_FOUND.
    """
    async with conn.transaction():
        # The row lock first: an upload committing meanwhile is then either cleared
        # here too, or comes after this and stays.
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
    slots: asyncio.Semaphore,
    reason: str | None,
) -> ServerPayload:
    """Make an uploaded image a server's icon (MANAGE_SERVER), as an avatar is made:
    the permission is checked before the image is decoded, and again, with the image
    stored, the icon changed (a previously uploaded icon deleted), audited and
    announced, in one transaction.

    Raises: PayloadTooLarge; BadRequest (INVALID_IMAGE); NotFound (SERVER_NOT_FOUND);
    Forbidden (MISSING_PERMISSIONS)."""
    _check_size(data, max_bytes)
    async with pool.acquire() as conn:
        await access_server(conn, actor, server_id, need=Permission.MANAGE_SERVER)
    image = await run_image_job(slots, encode_avatar, data)
    async with pool.acquire() as conn, conn.transaction():
        stored = await _store(conn, actor, "icon", image)
        return await servers.update_server(
            conn, actor, server_id, fields={"icon_url": media_url(stored)}, reason=reason
        )


# -- Serving ---------------------------------------------------------------------------


async def get_media(conn: asyncpg.Connection, media_id: UUID) -> media_q.MediaRow:
    """A stored image with its bytes. Anyone may fetch one: ids are random.

    Raises:
        NotFound: no such image (or no longer: replaced or cleared).
    """
    item = await media_q.get_media(conn, media_id=media_id)
    if item is None:
        raise NotFound("no such image")
    return item


async def get_media_info(conn: asyncpg.Connection, media_id: UUID) -> media_q.MediaInfo:
    """As get_media, without the bytes.

    Raises:
        NotFound: no such image.
    """
    item = await media_q.get_media_info(conn, media_id=media_id)
    if item is None:
        raise NotFound("no such image")
    return item
