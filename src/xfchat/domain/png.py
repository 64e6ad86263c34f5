"""A PNG's chunks walked once, its metadata chunks dropped without touching its pixels
(strip), as jpeg.strip does for a JPEG."""

from __future__ import annotations

import zlib

from xfchat.domain.jpeg import invalid

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that say where, when or by whom, never how the pixels look: EXIF (its GPS
# position, camera, orientation), text (comments, XMP in an iTXt, an author, a
# location) and the time of the last change.
METADATA = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})
IDAT, IEND, EXIF = b"IDAT", b"IEND", b"eXIf"


def chunk(kind: bytes, data: bytes) -> bytes:
    """A chunk: its length, type, data and CRC."""
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def strip(data: bytes) -> tuple[bytearray, bytes | None, int]:
    """The signature and the chunks up to IEND without the METADATA ones (anything after
    IEND dropped too), built a range at a time; the first eXIf chunk's data (None if
    none); where in the result the first IDAT starts (an eXIf belongs before it).

    Raises: BadRequest (INVALID_IMAGE: no PNG signature, or a chunk past the end)."""
    if not data.startswith(SIGNATURE):
        raise invalid("not a well-formed PNG")
    view = memoryview(data)
    out = bytearray(view[:8])
    exif: bytes | None = None
    first_idat = -1
    pos = 8
    while pos < len(data):
        if pos + 12 > len(data):
            raise invalid("the image is truncated")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise invalid("the image is truncated")
        if kind in METADATA:
            if kind == EXIF and exif is None:
                exif = data[pos + 8 : pos + 8 + length]
        else:
            if kind == IDAT and first_idat < 0:
                first_idat = len(out)
            out += view[pos:end]
        pos = end
        if kind == IEND:
            break
    # (no IEND: the decoder judges a PNG that simply stops after a whole chunk)
    return out, exif, first_idat if first_idat >= 0 else len(out)
