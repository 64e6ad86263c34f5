"""The image pipeline: avatars, server icons and attachment thumbnails.

Pillow decodes an upload (PNG, JPEG, GIF or WebP, told apart by its bytes, whatever the
client called it) within bounds checked before decoding (decompression bombs are
refused), and what we make from it is our own encoding of its first frame, with none of
the upload's metadata (EXIF and its GPS position, ICC profile, comments, text chunks):
for an avatar or icon, a square of at most 512x512 that is all we keep and serve (files
that are also something else, HTML, SVG, script or PHP "polyglots", are refused anyway,
as defence in depth); for an attachment, a thumbnail of at most 400x400 beside the
original, which is kept as uploaded (without its metadata: without_metadata).
PNG if it has transparency, else JPEG. CPU work: run it in a thread, through
run_image_job.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Protocol, TypeVar
from uuid import UUID

from PIL import Image, ImageOps, UnidentifiedImageError

from xfchat.domain import gif, jpeg, png, webp
from xfchat.domain.jpeg import MAX_JPEG_COEFFICIENT_BYTES as MAX_JPEG_COEFFICIENT_BYTES
from xfchat.domain.jpeg import MAX_JPEG_SCANS as MAX_JPEG_SCANS
from xfchat.domain.jpeg import invalid as _invalid
from xfchat.errors import ServiceUnavailable, XFChatError

log = logging.getLogger("xfchat.media")

FORMATS = ["PNG", "JPEG", "GIF", "WEBP"]
MAX_SIDE = 10_000  # pixels, either side of an upload
MAX_JPEG_SIDE = 20_000  # ... of a JPEG (a panorama), decoded at reduced scale
# width x height of a JPEG, checked before decoding: a 48 or 64 MP phone photo passes
# (libjpeg decodes it at 1/8 scale), and Pillow's own bomb warning (89.5 MP) is never hit.
MAX_PIXELS = 89_000_000
# ... of any other format: decoded whole (a JPEG decodes at 1/8 scale), up to 8 bytes a
# pixel (16-bit RGBA), so this bounds a decode's memory.
MAX_LOSSLESS_PIXELS = 16_000_000
OUTPUT_SIDE = 512  # the stored image is at most this wide and high
THUMBNAIL_SIDE = 400  # an attachment's thumbnail, likewise
ORIENTATION = 0x0112  # the EXIF tag
JPEG_QUALITY = 90
IMAGE_JOBS = 2  # decodes running at once per process: each may hold ~300 MB (a
# progressive JPEG up to MAX_JPEG_COEFFICIENT_BYTES) and a core
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


@contextmanager
def _decoding() -> Iterator[None]:
    """Whatever a hostile file makes Pillow raise is the upload's fault: INVALID_IMAGE,
    never a 500."""
    try:
        yield
    except XFChatError:
        raise
    except UnidentifiedImageError:
        raise _invalid("not a PNG, JPEG, GIF or WebP image") from None
    except Image.DecompressionBombError:  # Pillow's own bound, far above ours
        raise _invalid(f"the image has more than {MAX_PIXELS:,} pixels") from None
    except Exception as exc:  # (OSError for truncated data, ValueError, SyntaxError,
        # struct.error, IndexError from our own structure walk, ...)
        log.info("refused an image: %s: %s", type(exc).__name__, exc)
        raise _invalid("the image is damaged or could not be decoded") from None


def _opened(upload: Image.Image, side: int) -> Image.Image:
    """The first frame of an opened upload, decoded within the bounds, upright."""
    _check_dimensions(*upload.size, jpeg=upload.format in ("JPEG", "MPO"))
    if upload.format in ("JPEG", "MPO"):
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves both
        # sides at least `side`: far less memory and time.
        upload.draft(None, (side, side))
    upload.load()  # the first frame only, for animated GIF and WebP
    ImageOps.exif_transpose(upload, in_place=True)  # no copy of the whole image
    return _normalized(upload)


def encode_avatar(data: bytes) -> EncodedImage:
    """Check an upload and re-encode it as a square PNG or JPEG of at most 512x512.

    Raises:
        BadRequest: INVALID_IMAGE, for anything that is not a sound PNG, JPEG, GIF or
            WebP within the size bounds (never a 500, whatever the bytes).
    """
    if MARKUP.search(data, 0, SNIFF_WINDOW):
        raise _invalid("the file holds HTML, SVG, script or PHP; upload a plain image")
    with _decoding():
        end = _walked(data)
        with Image.open(BytesIO(data), formats=FORMATS) as upload:
            _check_structure(str(upload.format), data, end)
            return _encode(_square(_opened(upload, OUTPUT_SIDE)))


def _walked(data: bytes) -> int | None:
    """Where the image ends, its structure walked within the bounds of jpeg.segments,
    png.chunks, gif.blocks or webp.chunks before Pillow walks it (a Python loop a segment,
    chunk or block at a time: 9 s of a core for a JPEG header of 2 million empty
    comments, 1.5 s for a PNG of 700,000 empty chunks); None if it is none of the four
    (Pillow says what it is)."""
    if data.startswith(b"\xff\xd8\xff"):  # (Pillow takes a file for a JPEG by these alone)
        return jpeg.end(data)
    if data.startswith(png.SIGNATURE):
        return png.end(data)
    if gif.is_gif(data):
        return gif.end(data)
    if webp.is_webp(data):
        for _ in webp.chunks(data):  # (counted; libwebp's own walk is quick)
            pass
        return webp.riff_end(data)
    return None


@dataclass(frozen=True)
class Thumbnailed:
    """An attachment image: its format, its size as shown (upright), its thumbnail."""

    content_type: str
    width: int
    height: int
    thumbnail: EncodedImage


SIGNATURES = {
    png.SIGNATURE: "PNG",
    b"\xff\xd8\xff": "JPEG",
    **dict.fromkeys(gif.SIGNATURES, "GIF"),
}
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of a PNG, JPEG, GIF or WebP."""
    if webp.is_webp(head):
        return True
    return any(head.startswith(signature) for signature in SIGNATURES)


def make_thumbnail(data: bytes) -> Thumbnailed:
    """An image attachment's facts and thumbnail (at most THUMBNAIL_SIDE a side,
    proportions kept, never scaled up).

    Raises:
        BadRequest: INVALID_IMAGE: damaged, or beyond the bounds (a decompression bomb).
    """
    with _decoding():
        _walked(data)  # (a JPEG's scans are counted on the way)
        return _thumbnailed(data)


def _thumbnailed(data: bytes) -> Thumbnailed:
    with Image.open(BytesIO(data), formats=FORMATS) as upload:
        fmt = "JPEG" if upload.format == "MPO" else str(upload.format)
        width, height = upload.size
        # (before getexif, which decodes a whole PNG to find an eXIf chunk after its pixels)
        _check_dimensions(width, height, jpeg=fmt == "JPEG")
        if upload.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):  # turned a quarter
            width, height = height, width
        image = _opened(upload, THUMBNAIL_SIDE)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS, 3.0)
        return Thumbnailed(CONTENT_TYPES[fmt], width, height, _encode(image))


def _check_dimensions(width: int, height: int, *, jpeg: bool) -> None:
    if width < 1 or height < 1:
        raise _invalid("the image has no pixels")
    side = MAX_JPEG_SIDE if jpeg else MAX_SIDE
    if width > side or height > side:
        raise _invalid(f"the image is {width}x{height}; each side may be at most {side}")
    most = MAX_PIXELS if jpeg else MAX_LOSSLESS_PIXELS
    if width * height > most:
        raise _invalid(f"the image is {width}x{height}; at most {most:,} pixels")


def _check_structure(fmt: str, data: bytes, end: int | None) -> None:
    """Refuse data after the image's end, the other half of most polyglots. (Harmless
    to us all the same, since only our re-encoding is ever served.)

    A JPEG is the exception: cameras append data after its end on purpose (the gain map
    of an Ultra HDR photo, the other pictures of an MPO, the video of a motion photo),
    so there only markup after the end is refused (`end`: _walked)."""
    if end is None:  # (Pillow read a format that _walked does not know: none of ours)
        raise _invalid("not a PNG, JPEG, GIF or WebP image")
    if fmt in ("JPEG", "MPO"):
        if MARKUP.search(data, end):
            raise _invalid("the file holds HTML, SVG, script or PHP after the image")
        return
    if fmt == "PNG" and data[end - 8 : end - 4] != png.IEND:
        raise _invalid("the image is truncated")
    if end < len(data):
        raise _invalid("the file holds data after the end of the image")
    if end > len(data):
        raise _invalid("the image is truncated")


def without_metadata(data: bytes) -> bytes:
    """A JPEG, PNG, GIF or WebP attachment as it was uploaded, the same pixels bit for bit
    (its scans or image data are not touched), without its metadata or anything after the
    image's end (for a JPEG, an MPO's other frames, a gain map, a motion photo's video,
    which carry metadata of their own and which only the dropped XMP or MPF pointed
    at; for a PNG, every chunk but those of png.KEPT: eXIf, text, time, C2PA, any
    other; for a GIF, its comments and application extensions but an animation's loop
    count: gif.strip; for a WebP, every chunk but those of webp.KEPT: EXIF, XMP, C2PA,
    any other); its EXIF orientation, if any, is kept, alone in a
    small EXIF segment (or chunk) of our own. CPU work: run it through run_image_job.

    Raises: BadRequest (INVALID_IMAGE: not a well-formed JPEG, PNG, GIF or WebP, or
    beyond the bounds of jpeg.segments, png.chunks, gif.blocks or webp.chunks)."""
    with _decoding():
        if data.startswith(png.SIGNATURE):
            return _png_without_metadata(data)
        if gif.is_gif(data):
            return bytes(gif.strip(data))
        if webp.is_webp(data):
            return _webp_without_metadata(data)
        kept = jpeg.strip(data)  # (walked within its bounds before Pillow reads it)
        with Image.open(BytesIO(data), formats=["JPEG", "MPO"]) as opened:
            orientation = opened.getexif().get(ORIENTATION, 1)  # (reads no pixels)
        if orientation in range(2, 9):
            kept[2:2] = jpeg.orientation_segment(orientation)
        return bytes(kept)


def _png_without_metadata(data: bytes) -> bytes:
    kept, exif, before_idat = png.strip(data)
    orientation = _orientation(exif)
    if orientation in range(2, 9):
        kept[before_idat:before_idat] = png.chunk(png.EXIF, jpeg.orientation_tiff(orientation))
    return bytes(kept)


def _webp_without_metadata(data: bytes) -> bytes:
    kept, exif = webp.strip(data)
    orientation = _orientation(exif)
    if orientation in range(2, 9) and webp.set_exif_flag(kept):
        kept += webp.chunk(webp.EXIF, jpeg.orientation_tiff(orientation))
    return webp.with_size(kept)


def _orientation(exif: bytes | None) -> int:
    """The orientation an EXIF block (TIFF, or after "Exif\\0\\0") says, 1 if none."""
    if exif is None:
        return 1
    found = Image.Exif()
    found.load(exif)  # (its first IFD only)
    orientation = found.get(ORIENTATION, 1)
    return orientation if isinstance(orientation, int) else 1


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


R = TypeVar("R")


class Slots(Protocol):
    """Turns for image jobs (an asyncio.Semaphore is one)."""

    async def acquire(self) -> object: ...

    def release(self) -> None: ...


class ImageSlots:
    """A process's image slots: IMAGE_JOBS jobs at once, and at most one of them any one
    user's, so one account sending files of slow thumbnails (or an avatar with them)
    cannot hold every slot while others' sends time out behind it."""

    def __init__(self, jobs: int = IMAGE_JOBS) -> None:
        self.jobs = asyncio.Semaphore(jobs)
        self._turns: dict[UUID, _Turn] = {}  # users with a job running or waiting

    def of(self, user_id: UUID) -> _UserSlots:
        return _UserSlots(self, user_id)


@dataclass
class _Turn:
    lock: asyncio.Lock
    holders: int = 0  # running or waiting


@dataclass(frozen=True)
class _UserSlots:
    """One user's way into ImageSlots: their own turn first, then a process slot."""

    slots: ImageSlots
    user_id: UUID

    async def acquire(self) -> None:
        turns = self.slots._turns
        turn = turns.setdefault(self.user_id, _Turn(asyncio.Lock()))
        turn.holders += 1
        try:
            await turn.lock.acquire()
            try:
                await self.slots.jobs.acquire()
            except BaseException:
                turn.lock.release()
                raise
        except BaseException:
            self._leave(turn)
            raise

    def release(self) -> None:
        self.slots.jobs.release()
        turn = self.slots._turns[self.user_id]
        turn.lock.release()
        self._leave(turn)

    def _leave(self, turn: _Turn) -> None:
        turn.holders -= 1
        if not turn.holders:
            del self.slots._turns[self.user_id]


async def run_image_job(slots: Slots, job: Callable[[bytes], R], data: bytes) -> R:
    """Run `job` in a thread once one of `slots` (ImageSlots.of a user) is free. The
    slot is given back when the thread ends, not when the caller stops waiting, so
    abandoned requests cannot make more decodes run at once than the bound."""
    return await _in_slot(slots, lambda: job(data))


async def run_image_job_on(slots: Slots, job: Callable[[bytes], R], file: IO[bytes]) -> R:
    """run_image_job on the whole of `file`, read in the job's thread once the slot is
    taken: a file waiting for a slot holds no memory (read before, the 16 file sends a
    process takes at once held up to 16 whole files while two were looked at)."""

    def work() -> R:
        file.seek(0)
        return job(file.read())

    return await _in_slot(slots, work)


async def _in_slot(slots: Slots, work: Callable[[], R]) -> R:
    await slots.acquire()
    task = asyncio.ensure_future(asyncio.to_thread(work))

    def done(finished: asyncio.Future[R]) -> None:
        slots.release()
        if not finished.cancelled():
            finished.exception()  # retrieved, even if nobody awaits it any more

    task.add_done_callback(done)
    return await asyncio.shield(task)


async def run_image_job_by(
    deadline_s: float, slots: Slots, job: Callable[[bytes], R], data: bytes
) -> R:
    """run_image_job, answered within `deadline_s` (waiting for a slot included).

    Raises: ServiceUnavailable (IMAGE_BUSY, with Retry-After: nothing was stored)."""
    try:
        async with asyncio.timeout(deadline_s):
            return await run_image_job(slots, job, data)
    except TimeoutError:
        raise ServiceUnavailable(
            "the image could not be processed in time (nothing was stored); retry",
            code="IMAGE_BUSY",
            retry_after=1,
        ) from None
