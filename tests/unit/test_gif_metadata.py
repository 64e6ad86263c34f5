"""A GIF attachment loses its comments and application extensions (XMP among them)
without touching its frames, keeps its animation's loop count, and its walk (and that
of a PNG and a WebP) is bounded, whatever the file makes of it."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image, ImageSequence

from xfchat.domain import gif, images, png, webp
from xfchat.errors import BadRequest

PACKET = b"<x:GPSLat>48N</x:GPSLat>"
XMP = b"\x21\xff\x0bXMP DataXMP" + bytes([len(PACKET)]) + PACKET + b"\x00"


def animated(comment: bytes = b"at home, 48.85N") -> bytes:
    frames = [Image.new("P", (24, 16), color) for color in (1, 2, 3)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    out = BytesIO()
    frames[0].save(
        out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=50, comment=comment
    )
    return out.getvalue()


def with_xmp(data: bytes) -> bytes:
    """The GIF with an XMP application extension before its trailer, and data after."""
    return data[:-1] + XMP + b"\x3b" + b"after the trailer"


def frames(data: bytes) -> list[bytes]:
    with Image.open(BytesIO(data)) as opened:
        return [frame.convert("RGB").tobytes() for frame in ImageSequence.Iterator(opened)]


def test_a_gifs_comment_and_xmp_are_dropped_and_its_frames_and_loop_kept() -> None:
    original = with_xmp(animated())
    kept = images.without_metadata(original)
    for secret in (b"at home", b"XMP DataXMP", b"GPSLat", b"after the trailer"):
        assert secret in original and secret not in kept
    assert kept.endswith(b"\x3b")
    assert b"NETSCAPE2.0\x03\x01" in kept
    assert frames(kept) == frames(original) and len(frames(kept)) == 3
    with Image.open(BytesIO(kept)) as opened:
        assert opened.info["loop"] == 0 and opened.info["duration"] == 50
    # Every image block (descriptor, palette, LZW data) byte for byte.
    images_of = [original[b.start : b.end] for b in gif.blocks(original) if b.kind != gif.EXTENSION]
    assert images_of == [kept[b.start : b.end] for b in gif.blocks(kept) if b.kind != gif.EXTENSION]
    assert images.without_metadata(kept) == kept  # nothing left to drop


def test_a_loop_extension_keeps_its_count_alone() -> None:
    plain = animated()
    at = plain.index(b"NETSCAPE2.0") + 11 + 4  # after its count's sub-block
    padded = plain[:at] + b"\x05hello" + plain[at:]  # a further sub-block, of text
    kept = images.without_metadata(padded)
    assert b"hello" not in kept and b"NETSCAPE2.0\x03\x01\x00\x00\x00" in kept
    other = plain.replace(b"NETSCAPE2.0", b"NETSCAPE9.9")  # not a loop count: dropped
    assert b"NETSCAPE" not in images.without_metadata(other)


def test_text_in_a_plain_text_or_graphic_control_extension_is_dropped() -> None:
    """Was: both were kept byte for byte, so text planted in a plain text extension
    (which no decoder draws) or in a graphic control extension past its 4 bytes (a
    longer first sub-block, further sub-blocks: read by no decoder) was downloaded by
    everyone, as a comment was before comments were dropped."""
    plain = animated(comment=b"")
    control = plain.index(b"\x21\xf9\x04")
    first = next(b for b in gif.blocks(plain) if b.kind == gif.IMAGE)
    text = b"\x21\x01\x0c" + bytes(12) + b"\x0fat home, 48.85N\x00"
    longer = plain[: control + 2] + b"\x14" + plain[control + 3 : control + 7]
    for planted in (
        plain[: first.end] + text + plain[first.end :],  # a plain text extension
        plain[: control + 7] + b"\x0fat home, 48.85N" + plain[control + 7 :],  # a sub-block more
        longer + b"at home, 48.85N!" + plain[control + 7 :],  # a first sub-block of 20
    ):
        kept = images.without_metadata(planted)
        assert b"at home" in planted and b"at home" not in kept
        assert frames(kept) == frames(plain) and kept == images.without_metadata(plain)
        with Image.open(BytesIO(kept)) as opened:
            assert opened.info["duration"] == 50 and opened.info["loop"] == 0
    # A graphic control extension of its 4 bytes is kept as it is; one of fewer (which
    # Chromium reads on into the next bytes, Pillow not) is refused.
    assert images.without_metadata(plain) == plain
    for short in (0, 3):
        sub_blocks = bytes([short]) + bytes(short) + (b"\x00" if short else b"")
        damaged = plain[: control + 2] + sub_blocks
        with pytest.raises(BadRequest, match="fewer than 4 bytes"):
            images.without_metadata(damaged + plain[control + 8 :])


@pytest.mark.parametrize(
    "damaged",
    [
        b"GIF89a\x01\x00",  # no screen descriptor
        animated()[:-10],  # a sub-block past the end
        animated()[:-1] + b"\x99\x3b",  # a block of unknown kind
        animated()[:-1] + b"\x21\xfe\x05ab",  # a comment past the end
    ],
)
def test_a_malformed_gif_is_invalid(damaged: bytes) -> None:
    with pytest.raises(BadRequest) as refused:
        images.without_metadata(damaged)
    assert refused.value.code == "INVALID_IMAGE"


def gif_of(blocks: bytes) -> bytes:
    return b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + blocks + b"\x3b"


def test_a_gifs_blocks_and_sub_blocks_are_bounded() -> None:
    comment = b"\x21\xfe\x00"
    assert gif.end(gif_of(comment * gif.MAX_GIF_BLOCKS)) > 0
    with pytest.raises(BadRequest, match="blocks"):
        gif.end(gif_of(comment * (gif.MAX_GIF_BLOCKS + 1)))
    image = b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02"
    many = gif_of(image + b"\x01\x44" * gif.MAX_GIF_SUB_BLOCKS + b"\x00")
    assert gif.end(many) == len(many)
    with pytest.raises(BadRequest, match="sub-blocks"):
        gif.end(gif_of(image + b"\x01\x44" * (gif.MAX_GIF_SUB_BLOCKS + 1) + b"\x00"))


def test_a_pngs_and_a_webps_chunks_are_bounded() -> None:
    header = png.chunk(b"IHDR", bytes([0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]))
    empty = png.chunk(b"gAMA", b"")  # (a kept kind: nothing dropped within the bound)
    for extra, fails in ((png.MAX_PNG_CHUNKS - 2, False), (png.MAX_PNG_CHUNKS - 1, True)):
        data = png.SIGNATURE + header + empty * extra + png.chunk(b"IEND", b"")
        if fails:
            with pytest.raises(BadRequest, match="chunks"):
                images.without_metadata(data)
        else:
            assert images.without_metadata(data) == data
    out = BytesIO()
    Image.new("RGB", (1, 1)).save(out, "WEBP", lossless=True)  # (one chunk)
    for extra, fails in ((webp.MAX_WEBP_CHUNKS - 1, False), (webp.MAX_WEBP_CHUNKS, True)):
        body = out.getvalue()[12:] + b"ICCP\x00\x00\x00\x00" * extra  # (kept, as above)
        data = b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body
        if fails:
            with pytest.raises(BadRequest, match="chunks"):
                images.without_metadata(data)
        else:
            assert images.without_metadata(data) == data
