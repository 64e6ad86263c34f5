"""What the worst small images cost the image path's CPU, per MiB.

    uv run python -m bench.images_worst [--mib 8]

Hostile files of at most `--mib` MiB (the default attachment and avatar bound) built
of the smallest structures each format allows: empty PNG chunks, tiny GIF frames,
one-byte GIF sub-blocks and empty extensions, empty WebP chunks, empty JPEG
comments. Each goes through what an attachment goes through (the metadata strip, then
the thumbnail) and what an avatar goes through (encode_avatar), in this process; the
CPU time (process_time, best of 3) and the answer are printed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Callable
from io import BytesIO

from PIL import Image

from xfchat.domain import images, png
from xfchat.errors import XFChatError

MiB = 1 << 20


def _png_start() -> bytes:
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return png.SIGNATURE + png.chunk(b"IHDR", header)


def png_empty_chunks(size: int) -> bytes:
    """Empty ancillary chunks before the image data (12 bytes each)."""
    tail = png.chunk(b"IDAT", zlib.compress(b"\x00\x00")) + png.chunk(b"IEND", b"")
    filler = png.chunk(b"abCd", b"")
    return _png_start() + filler * ((size - 100) // len(filler)) + tail


def png_tiny_idats(size: int) -> bytes:
    """The image data, then empty IDAT chunks (12 bytes each), which decoders skip."""
    data = zlib.compress(b"\x00\x00")
    idats = png.chunk(b"IDAT", data) + png.chunk(b"IDAT", b"") * ((size - 100) // 12)
    return _png_start() + idats + png.chunk(b"IEND", b"")


def _gif_start() -> bytes:
    return b"GIF89a" + (1).to_bytes(2, "little") * 2 + b"\x80\x00\x00" + b"\x00\x00\x00" * 2


FRAME = b"\x21\xf9\x04\x00\x00\x00\x00\x00" + b"\x2c" + b"\x00" * 4 + b"\x01\x00\x01\x00\x00"
FRAME += b"\x02\x02\x44\x01\x00"  # LZW: code size 2, one sub-block of 2 bytes


def gif_tiny_frames(size: int) -> bytes:
    """1x1 frames, each with its graphic control extension (26 bytes)."""
    return _gif_start() + FRAME * ((size - 30) // len(FRAME)) + b"\x3b"


def gif_one_byte_sub_blocks(size: int) -> bytes:
    """One frame whose LZW data is one-byte sub-blocks (2 bytes each)."""
    image = b"\x2c" + b"\x00" * 4 + b"\x01\x00\x01\x00\x00" + b"\x02"
    return _gif_start() + image + b"\x01\x44" * ((size - 40) // 2) + b"\x00\x3b"


def gif_empty_extensions(size: int) -> bytes:
    """Empty comment extensions before the frame (3 bytes each)."""
    return _gif_start() + b"\x21\xfe\x00" * ((size - 60) // 3) + FRAME + b"\x3b"


def webp_empty_chunks(size: int) -> bytes:
    """Empty unknown chunks after a lossless 1x1 image (8 bytes each)."""
    out = BytesIO()
    Image.new("RGB", (1, 1)).save(out, "WEBP", lossless=True)
    body = out.getvalue()[12:] + b"ABCD\x00\x00\x00\x00" * ((size - 100) // 8)
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def jpeg_empty_comments(size: int) -> bytes:
    """Empty comment segments (4 bytes each)."""
    return b"\xff\xd8" + b"\xff\xfe\x00\x02" * ((size - 4) // 4) + b"\xff\xd9"


CASES: dict[str, Callable[[int], bytes]] = {
    "PNG: empty chunks": png_empty_chunks,
    "PNG: empty IDAT chunks": png_tiny_idats,
    "GIF: 1x1 frames": gif_tiny_frames,
    "GIF: 1-byte sub-blocks": gif_one_byte_sub_blocks,
    "GIF: empty comments": gif_empty_extensions,
    "WebP: empty chunks": webp_empty_chunks,
    "JPEG: empty comments": jpeg_empty_comments,
}


def attachment(data: bytes) -> object:
    """What a send does with an image file: strip (where it does), then thumbnail."""
    if images.strippable(data[:16]):
        data = images.without_metadata(data)
    return images.make_thumbnail(data)


def cpu(job: Callable[[bytes], object], data: bytes) -> tuple[float, str]:
    best, answer = float("inf"), ""
    for _ in range(3):
        start = time.process_time()
        try:
            job(data)
            answer = "ok"
        except XFChatError as exc:
            answer = f"{exc.status} {exc.code}: {exc.message[:60]}"
        best = min(best, time.process_time() - start)
    return best, answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, default=8)
    size = int(parser.parse_args().mib * MiB)
    print(f"{'input':<26} {'MiB':>5} {'path':<10} {'CPU ms':>8} {'ms/MiB':>7}  answer")
    for name, build in CASES.items():
        data = build(size)
        for path, job in (("attachment", attachment), ("avatar", images.encode_avatar)):
            spent, answer = cpu(job, data)
            mib = len(data) / MiB
            print(
                f"{name:<26} {mib:5.1f} {path:<10} {spent * 1000:8.0f} "
                f"{spent * 1000 / mib:7.0f}  {answer}"
            )


if __name__ == "__main__":
    main()
