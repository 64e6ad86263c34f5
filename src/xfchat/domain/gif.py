"""A GIF's blocks walked once within bounds, its metadata blocks dropped without
touching its frames' pixels (strip), as png.strip does for a PNG.

Every bound is counted as the walk goes, so refusing a file costs work in proportion to
the bound, not to the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from xfchat.domain.jpeg import invalid

SIGNATURES = (b"GIF87a", b"GIF89a")
# Blocks after the header (extensions and images: a frame is one of each, its graphic
# control extension and its image): room for 10,000 frames. Unbounded, 8 MiB of empty
# comments (3 bytes each) were 2.8 million blocks, walked in Python.
MAX_GIF_BLOCKS = 20_000
# Sub-blocks of all the blocks together (each at most 255 bytes: encoders fill them, so
# a file of 25 MiB, the largest an upload may be, has about 100,000): 8 MiB of one-byte
# sub-blocks were 4 million.
MAX_GIF_SUB_BLOCKS = 200_000
EXTENSION, IMAGE, TRAILER = 0x21, 0x2C, 0x3B
GRAPHIC_CONTROL, PLAIN_TEXT, COMMENT, APPLICATION = 0xF9, 0x01, 0xFE, 0xFF
# The application extensions that say how often an animation loops (Netscape's, and
# the same under another name), kept with that count alone: every other one (XMP
# "XMP DataXMP", ICC profiles, editors' own) is metadata, as comments are.
LOOPS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0"})


def is_gif(data: bytes) -> bool:
    return data.startswith(SIGNATURES)


def _color_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


@dataclass(frozen=True)
class Block:
    kind: int  # EXTENSION, IMAGE or TRAILER
    label: int  # an extension's label (0 for the others)
    start: int
    body: int  # where its sub-blocks begin
    end: int  # just after its block terminator


class _Walk:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sub_blocks = 0

    def sub_blocks_from(self, pos: int) -> int:
        """Just after the sub-blocks starting at `pos` (their terminator included)."""
        data, count = self.data, self.sub_blocks
        while True:
            if pos >= len(data):
                raise invalid("the GIF is truncated")
            size = data[pos]
            pos += size + 1
            if not size:
                break
            count += 1
            if count > MAX_GIF_SUB_BLOCKS:
                raise invalid(f"the GIF has more than {MAX_GIF_SUB_BLOCKS:,} sub-blocks")
        self.sub_blocks = count
        return pos


def blocks(data: bytes) -> Iterator[Block]:
    """The blocks after the header, logical screen descriptor and global palette, up to
    the trailer (yielded last) or the end of the data (a GIF that simply stops after a
    whole block: the decoder judges it).

    Raises: BadRequest (INVALID_IMAGE: no GIF header, a block of unknown kind, a block
    past the end, more than MAX_GIF_BLOCKS blocks or MAX_GIF_SUB_BLOCKS sub-blocks)."""
    if not is_gif(data) or len(data) < 13:
        raise invalid("not a well-formed GIF")
    walk = _Walk(data)
    pos = 13 + _color_table(data[10])
    if pos > len(data):
        raise invalid("the GIF is truncated")
    count = 0
    while pos < len(data):
        kind = data[pos]
        if kind == TRAILER:
            yield Block(kind, 0, pos, pos + 1, pos + 1)
            return
        count += 1
        if count > MAX_GIF_BLOCKS:
            raise invalid(f"the GIF has more than {MAX_GIF_BLOCKS:,} blocks")
        if kind == EXTENSION:
            if pos + 2 > len(data):
                raise invalid("the GIF is truncated")
            label, start = data[pos + 1], pos + 2
        elif kind == IMAGE:  # descriptor, its palette, LZW code size, then sub-blocks
            if pos + 10 > len(data):
                raise invalid("the GIF is truncated")
            label, start = 0, pos + 10 + _color_table(data[pos + 9]) + 1
        else:
            raise invalid("not a well-formed GIF (a block of unknown kind)")
        end = walk.sub_blocks_from(start)
        yield Block(kind, label, pos, start, end)
        pos = end


def end(data: bytes) -> int:
    """Just after the trailer (or the last whole block). Raises: what `blocks` raises."""
    last = 13
    for block in blocks(data):
        last = block.end
    return last


def strip(data: bytes) -> bytearray:
    """The header, screen descriptor, palette and blocks up to the trailer, without
    comments, plain text extensions (text that no decoder draws: Chromium, Firefox,
    WebKit and Pillow skip them), application extensions other than an animation's
    loop count (kept with only that count: loop), or extensions of unknown label;
    anything after the trailer dropped. Images (palette and LZW data) are kept byte for
    byte, and graphic control extensions as decoders read them (graphic_control).
    Built a range at a time.

    Raises: what `blocks` raises; BadRequest (INVALID_IMAGE: a graphic control
    extension of fewer than 4 bytes)."""
    view = memoryview(data)
    out = bytearray()
    kept = last = 0  # data[kept:last] is still to be copied
    for block in blocks(data):
        last = block.end
        if block.kind != EXTENSION:
            continue
        if block.label == GRAPHIC_CONTROL:
            replacement = graphic_control(data, block)
            if replacement is None:
                continue
        else:
            replacement = loop(data, block) if block.label == APPLICATION else b""
        out += view[kept : block.start]
        out += replacement
        kept = block.end
    out += view[kept : max(last, 13 + _color_table(data[10]))]
    return out


def graphic_control(data: bytes, block: Block) -> bytes | None:
    """A graphic control extension as it is with its first 4 bytes alone (flags, delay,
    transparent index: all a decoder reads of it, Chromium whatever its first
    sub-block's size says, Pillow the first sub-block), None when it is that already.
    Whatever else it carried (more of its first sub-block, further sub-blocks) was
    kept byte for byte, read by no decoder: text a comment would have carried.

    Raises: BadRequest (INVALID_IMAGE: a first sub-block of fewer than 4 bytes, which
    Chromium reads on into the bytes after it and Pillow not)."""
    size = data[block.body]
    if size < 4:
        raise invalid("the GIF has a graphic control extension of fewer than 4 bytes")
    if size == 4 and block.end == block.body + 6:
        return None
    return (
        data[block.start : block.body] + b"\x04" + data[block.body + 1 : block.body + 5] + b"\x00"
    )


def loop(data: bytes, block: Block) -> bytes:
    """An application extension that is a loop count, as it is with only its identifier
    and count (b"" for any other: metadata)."""
    first = data[block.body : block.body + 12]
    if len(first) != 12 or first[0] != 11 or first[1:] not in LOOPS:
        return b""
    count = data[block.body + 12 : block.body + 16]
    if len(count) != 4 or count[0] != 3 or count[1] != 1:
        return b""
    return data[block.start : block.body] + first + count + b"\x00"
