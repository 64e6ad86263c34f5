"""A WebP's chunks walked once, its EXIF, XMP and every chunk not of the image dropped
without touching its image data (strip), as jpeg.strip does for a JPEG."""

from __future__ import annotations

from collections.abc import Iterator

from xfchat.domain.jpeg import invalid

EXIF, XMP, VP8X = b"EXIF", b"XMP ", b"VP8X"
# The chunks kept: the container's own but EXIF and XMP (the image, its alpha, its
# colour profile, an animation and its frames). Every other one goes, whatever it
# carries: a C2PA manifest (C2PA: who made and edited it, where), or any chunk of a
# name no decoder knows. (Was: only EXIF and XMP went, every other chunk was kept.)
KEPT = frozenset({VP8X, b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM", b"ANMF"})
EXIF_FLAG, XMP_FLAG = 0x08, 0x04  # in VP8X's flags
# Chunks of a WebP, counted as they are walked: a still image has one to five, an
# animated one one a frame. Unbounded, 8 MiB of empty chunks were a million, walked in
# Python: 0.4 s of a core for one upload.
MAX_WEBP_CHUNKS = 20_000


def is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def riff_end(data: bytes) -> int:
    """Where the RIFF ends (its size counts after itself)."""
    return 8 + int.from_bytes(data[4:8], "little")


def chunk(kind: bytes, data: bytes) -> bytes:
    """A chunk: its FourCC, size and data, padded to an even length."""
    return kind + len(data).to_bytes(4, "little") + data + b"\x00" * (len(data) & 1)


def chunks(data: bytes) -> Iterator[tuple[bytes, int, int, int]]:
    """Each chunk's FourCC, start, size and end (its padding included), up to the
    RIFF's end.

    Raises: BadRequest (INVALID_IMAGE: no WebP header, a chunk past the RIFF's end, more
    than MAX_WEBP_CHUNKS chunks)."""
    end = riff_end(data)
    if not is_webp(data) or end > len(data):
        raise invalid("the image is truncated")
    pos, count = 12, 0
    while pos < end:
        count += 1
        if count > MAX_WEBP_CHUNKS:
            raise invalid(f"the WebP has more than {MAX_WEBP_CHUNKS:,} chunks")
        if pos + 8 > end:
            raise invalid("the image is truncated")
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        after = pos + 8 + size + (size & 1)
        if after > end:
            raise invalid("the image is truncated")
        yield data[pos : pos + 4], pos, size, after
        pos = after


def strip(data: bytes) -> tuple[bytearray, bytes | None]:
    """The RIFF header and the KEPT chunks (EXIF, XMP and every other one dropped, the
    flags of the first two cleared in VP8X; anything after the RIFF's end dropped),
    built a range at a time; the first EXIF chunk's data (None if none).

    Raises: what `chunks` raises."""
    view = memoryview(data)
    out = bytearray(view[:12])
    exif: bytes | None = None
    for kind, pos, size, after in chunks(data):
        if kind not in KEPT:
            if kind == EXIF and exif is None:
                exif = data[pos + 8 : pos + 8 + size]
        else:
            at = len(out)
            out += view[pos:after]
            if kind == VP8X and size >= 1:
                out[at + 8] &= ~(EXIF_FLAG | XMP_FLAG) & 0xFF
    return out, exif


def with_size(out: bytearray) -> bytes:
    """The RIFF with its size set to what it holds."""
    out[4:8] = (len(out) - 8).to_bytes(4, "little")
    return bytes(out)


def set_exif_flag(out: bytearray) -> bool:
    """Set the EXIF flag of the first chunk when it is VP8X (an EXIF chunk needs one);
    whether it was."""
    if out[12:16] != VP8X or len(out) < 21:
        return False
    out[20] |= EXIF_FLAG
    return True
