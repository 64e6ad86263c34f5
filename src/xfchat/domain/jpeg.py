"""A JPEG's structure: its markers walked once within bounds (before Pillow reads them:
its own walk of a hostile header is a Python loop a byte or a segment at a time), and
its metadata segments dropped without touching its scans (strip).

Every bound is counted as the walk goes, so refusing a file costs work in proportion to
the bound, not to the file."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from xfchat.errors import BadRequest

# Scans of a JPEG, counted before decoding: libjpeg walks every block of the image again
# for each one, so a small file repeating a scan thousands of times took minutes of a
# core. A baseline JPEG has 1 (or one a component); libjpeg's progressive mode writes
# 6 to 10, mozjpeg's up to about 20.
MAX_JPEG_SCANS = 100
# Bytes of coefficients libjpeg holds to decode a JPEG of several scans (a progressive
# one): every block of the whole image, whatever the scale asked for, 128 bytes a block.
# A 4:2:0 one of MAX_PIXELS takes 267 MB, a 4:4:4 one 535 MB (515 MB measured); beyond
# this, CMYK ones of over ~70 MP are refused.
MAX_JPEG_COEFFICIENT_BYTES = 560_000_000
# Markers outside the scans (segments, SOI to EOI, each scan's own included): a camera
# or editor writes fewer than 50, and a segment holds at most 64 KiB, so 1,000 is room
# for 60 MiB of metadata. Unbounded, 8 MiB of two-byte markers made 4 million segments:
# 7 s of a core and 650 MB for one upload.
MAX_JPEG_SEGMENTS = 1_000
# Fill bytes (0xFF before a marker) outside the scans, all together: optional padding,
# which hardly any encoder writes (and the strip drops).
MAX_JPEG_FILL = 65_536
FRAME_HEADERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15
# Markers libjpeg does not read outside a scan, refused: it refuses the file itself
# for the reserved 0x02-0xBF, JPG (0xC8), a second SOI, DHP and EXP (hierarchical) and
# JPG0-JPG13 (Pillow already for TEM, 0x01, before the first scan), and skips a stuffed
# 0x00 as junk, which the walk refuses wherever a marker belongs.
REFUSED_MARKERS = frozenset([*range(0x00, 0xC0), 0xC8, 0xD8, 0xDE, 0xDF, *range(0xF0, 0xFE)])
RESTARTS = frozenset(range(0xD0, 0xD8))  # RST0-RST7: no length
SOS, EOI = 0xDA, 0xD9

FILL = re.compile(rb"\xff+")
# In entropy-coded data, 0xFF is followed by 0x00 (a stuffed byte), a restart marker or
# more 0xFF (fill): the first 0xFF followed by anything else starts the next marker.
# (A regular expression: a Python loop over each 0xFF took 0.6 s for 8 MiB of them.)
ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def invalid(message: str) -> BadRequest:
    return BadRequest(message, code="INVALID_IMAGE")


@dataclass(frozen=True)
class Segment:
    marker: int
    start: int  # its 0xFF (the fill bytes before it left out)
    body: int  # where its bytes after the marker (and the length) begin
    end: int  # just after it: a scan's entropy-coded data included


def segments(data: bytes) -> Iterator[Segment]:
    """The segments of the first image of a JPEG, from the one after SOI to its EOI,
    one at a time (nothing is held but the counts).

    Raises: BadRequest (INVALID_IMAGE: junk, or a marker libjpeg does not read, where a
    marker belongs, a length past the end, a scan with no end, more than
    MAX_JPEG_SEGMENTS segments, MAX_JPEG_FILL fill bytes or MAX_JPEG_SCANS scans, or
    several scans whose coefficients take more than MAX_JPEG_COEFFICIENT_BYTES)."""
    pos = 2  # SOI
    walked = scans = coefficients = fill = 0
    while True:
        walked += 1
        if walked > MAX_JPEG_SEGMENTS:
            raise invalid(f"the JPEG has more than {MAX_JPEG_SEGMENTS:,} segments")
        # (no further than one byte past the fill bytes still allowed)
        run = FILL.match(data, pos, pos + 2 + MAX_JPEG_FILL - fill)
        if run is None:
            raise invalid("not a well-formed JPEG (no marker where one belongs)")
        fill += run.end() - pos - 1
        if fill > MAX_JPEG_FILL:
            raise invalid(f"the JPEG has more than {MAX_JPEG_FILL:,} fill bytes")
        start, pos = run.end() - 1, run.end() + 1
        if pos > len(data):
            raise invalid("the JPEG is truncated")
        marker = data[start + 1]
        if marker in REFUSED_MARKERS:
            raise invalid(f"the JPEG holds a reserved marker (0xFF{marker:02X}) outside a scan")
        body = pos
        if marker == EOI:
            if scans > 1 and coefficients > MAX_JPEG_COEFFICIENT_BYTES:
                raise invalid(
                    "the progressive JPEG is too large to decode (save it as a baseline JPEG, "
                    "or with 4:2:0 chroma subsampling)"
                )
            yield Segment(marker, start, body, pos)
            return
        if marker not in RESTARTS:
            length = int.from_bytes(data[pos : pos + 2], "big")
            if length < 2 or pos + length > len(data):
                raise invalid("the JPEG is truncated (a segment runs past its end)")
            if marker in FRAME_HEADERS:
                coefficients = max(coefficients, _coefficient_bytes(data, pos))
            pos += length
        if marker == SOS:  # entropy-coded data up to the next marker
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise invalid(f"the JPEG has more than {MAX_JPEG_SCANS} scans")
            found = ENTROPY_END.search(data, pos)
            if found is None:
                raise invalid("the JPEG is truncated (a scan has no end)")
            pos = found.start()
        yield Segment(marker, start, body, pos)


def end(data: bytes) -> int:
    """The offset just after the first image's EOI marker (walked as `segments` says).

    Raises: what `segments` raises."""
    last = 0
    for segment in segments(data):
        last = segment.end
    return last


def _coefficient_bytes(data: bytes, at: int) -> int:
    """What a frame (its header at `at`) takes as coefficients: 64 of 2 bytes for every
    8x8 block of every component, each component's size set by its sampling factors.

    Raises: IndexError or ValueError on a damaged header (INVALID_IMAGE to the caller)."""
    height = int.from_bytes(data[at + 3 : at + 5], "big")
    width = int.from_bytes(data[at + 5 : at + 7], "big")
    factors = [(data[at + 9 + 3 * i] >> 4, data[at + 9 + 3 * i] & 15) for i in range(data[at + 7])]
    most_h, most_v = max(h for h, _ in factors), max(v for _, v in factors)
    blocks = sum(
        math.ceil(math.ceil(width * h / most_h) / 8) * math.ceil(math.ceil(height * v / most_v) / 8)
        for h, v in factors
    )
    return blocks * 128


APP0, APP2, APP14, COM, DNL = 0xE0, 0xE2, 0xEE, 0xFE, 0xDC
JFIF, ICC, ADOBE = b"JFIF\x00", b"ICC_PROFILE\x00", b"Adobe"


def strip(data: bytes) -> bytearray:
    """SOI and the segments of the first image, its scans untouched, without its
    metadata or anything after its EOI: built as the walk goes, a range at a time.

    Of APP0-APP15, COM and DNL (which libjpeg skips unread) it keeps only what colours
    need, from the header (before the first scan; decoders read them nowhere else):
    JFIF, cut to its 16 bytes (version, units, density; its own thumbnail dropped), and
    the ICC profile and Adobe's segment (how its colours are transformed) when well
    formed: the profile's chunks numbered 1 to N of N, all there once (else libjpeg
    ignores them all, and they go), starting with a profile's header; Adobe's of its
    fixed 12 bytes. The rest is metadata (EXIF and its GPS position, XMP, IPTC, MPF,
    JFXX's thumbnail, maker notes, comments, content credentials), between the scans
    of a progressive JPEG as well; and the fill bytes between segments go too.

    Raises: what `segments` raises."""
    view = memoryview(data)
    out = bytearray(view[:2])
    header = True
    chunks: list[tuple[int, int, int, int]] = []  # ICC: where in `out`, size, number, of
    for seg in segments(data):
        if not (0xE0 <= seg.marker <= 0xEF or seg.marker in (COM, DNL)):
            out += view[seg.start : seg.end]
            header = header and seg.marker != SOS
            continue
        if not header:
            continue
        own = view[seg.body + 2 : seg.end]  # (after its two length bytes)
        if seg.marker == APP0 and own[:5] == JFIF and len(own) >= 14:
            out += b"\xff\xe0\x00\x10" + own[:12] + b"\x00\x00"  # (a 0x0 thumbnail)
        elif seg.marker == APP2 and own[:12] == ICC and len(own) >= 14 and 1 <= own[12] <= own[13]:
            chunks.append((len(out), seg.end - seg.start, own[12], own[13]))
            out += view[seg.start : seg.end]
        elif seg.marker == APP14 and own[:5] == ADOBE and len(own) == 12:
            out += view[seg.start : seg.end]
    if chunks and not _one_profile(out, chunks):
        for at, size, _, _ in reversed(chunks):
            del out[at : at + size]
    return out


def _one_profile(out: bytearray, chunks: list[tuple[int, int, int, int]]) -> bool:
    """Whether the ICC chunks kept make the one profile libjpeg reads: numbered 1 to N
    of N, each once, and beginning with a profile's header (128 bytes, its signature
    "acsp" at 36), not any bytes after ICC_PROFILE."""
    numbers = sorted(number for _, _, number, _ in chunks)
    if numbers != list(range(1, len(chunks) + 1)) or any(n != len(chunks) for *_, n in chunks):
        return False
    at, size = next((at, size) for at, size, number, _ in chunks if number == 1)
    profile = at + 4 + 14  # (marker, length, ICC_PROFILE\0, number, count)
    return size - 4 - 14 >= 128 and out[profile + 36 : profile + 40] == b"acsp"


def orientation_segment(orientation: int) -> bytes:
    """An APP1 EXIF segment holding only the orientation tag (orientation_tiff)."""
    body = b"Exif\x00\x00" + orientation_tiff(orientation)
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def orientation_tiff(orientation: int) -> bytes:
    """EXIF holding only the orientation tag: big-endian TIFF, one IFD of one SHORT
    entry, no next IFD."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"
    tiff += b"\x01\x12\x00\x03\x00\x00\x00\x01" + orientation.to_bytes(2, "big") + b"\x00\x00"
    return tiff + b"\x00\x00\x00\x00"
