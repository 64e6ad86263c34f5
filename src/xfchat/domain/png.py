"""A PNG's chunks walked once, all but those that say how its pixels look dropped
without touching its pixels (strip), as jpeg.strip does for a JPEG."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from xfchat.domain.jpeg import invalid

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The chunks kept: those that say how the pixels look (the critical ones, transparency,
# colour: gamma, chromaticities, sRGB, the ICC profile, cICP and the HDR ones, the
# significant bits, background, histogram, physical size) and an animation's (APNG).
# Every other one goes, as jpeg.strip keeps only what colours need: EXIF (its GPS
# position, camera, orientation), text (comments, XMP in an iTXt, an author, a
# location), the time of the last change, a C2PA manifest (caBX: who made and edited
# it, where), and any chunk of a name no decoder knows, whatever it carries. (Was a
# list of the metadata ones: a caBX, or any private chunk, was kept byte for byte.)
KEPT = frozenset(
    {
        *(b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP"),
        *(b"cICP", b"mDCV", b"mDCv", b"cLLI", b"cLLi", b"sBIT", b"bKGD", b"hIST", b"pHYs"),
        *(b"acTL", b"fcTL", b"fdAT"),
    }
)
IDAT, IEND, EXIF = b"IDAT", b"IEND", b"eXIf"
# Chunks of a PNG, counted as they are walked: encoders write the image data in chunks
# of 8 to 64 KiB (a few hundred in a file of 25 MiB, the largest an upload may be), an
# animated one two or three a frame. Unbounded, 8 MiB of empty chunks were 700,000,
# walked in Python here and again by Pillow: 1.5 s of a core for one upload.
MAX_PNG_CHUNKS = 20_000


def chunk(kind: bytes, data: bytes) -> bytes:
    """A chunk: its length, type, data and CRC."""
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Each chunk's type, start and end, from the one after the signature to IEND (or
    to the last whole chunk: the decoder judges a PNG that simply stops there).

    Raises: BadRequest (INVALID_IMAGE: no PNG signature, a chunk past the end, more
    than MAX_PNG_CHUNKS chunks)."""
    if not data.startswith(SIGNATURE):
        raise invalid("not a well-formed PNG")
    pos = 8
    count = 0
    while pos < len(data):
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise invalid(f"the PNG has more than {MAX_PNG_CHUNKS:,} chunks")
        if pos + 12 > len(data):
            raise invalid("the image is truncated")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + int.from_bytes(data[pos : pos + 4], "big")
        if end > len(data):
            raise invalid("the image is truncated")
        yield kind, pos, end
        if kind == IEND:
            return
        pos = end


def end(data: bytes) -> int:
    """Just after IEND (or the last whole chunk). Raises: what `chunks` raises."""
    last = 8
    for _, _, after in chunks(data):
        last = after
    return last


def strip(data: bytes) -> tuple[bytearray, bytes | None, int]:
    """The signature and the KEPT chunks up to IEND (every other one, and anything after
    IEND, dropped), built a range at a time; the first eXIf chunk's data (None if
    none); where in the result the first IDAT starts (an eXIf belongs before it).

    Raises: what `chunks` raises."""
    view = memoryview(data)
    out = bytearray(view[:8])
    exif: bytes | None = None
    first_idat = -1
    for kind, pos, end in chunks(data):
        if kind not in KEPT:
            if kind == EXIF and exif is None:
                exif = data[pos + 8 : end - 4]
        else:
            if kind == IDAT and first_idat < 0:
                first_idat = len(out)
            out += view[pos:end]
    return out, exif, first_idat if first_idat >= 0 else len(out)
