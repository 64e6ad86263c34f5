"""Mutation fuzzing of the attachment image path: metadata gone or 400, never else.

    uv run python -m bench.images_fuzz [--cases 2000] [--seed 1234]

For each format (a PNG, a GIF, a still and an animated WebP, a JPEG, made with Pillow),
one file with a marker planted in every metadata block the strip must drop (tEXt,
iTXt, zTXt, eXIf; comment, XMP, after the trailer; EXIF, XMP; COM, EXIF, XMP), then
`--cases` copies with bytes flipped, inserted, deleted, duplicated or cut at random
(a fixed seed: the same files each run). Each goes through what an attachment goes
through (images.without_metadata, then images.make_thumbnail on its result), and the
structure walk alone (png/gif/webp/jpeg.strip). Printed per format: stored and refused
(400 INVALID_IMAGE), any other exception (of the pipeline: a defect; of a walk alone:
what _decoding turns into INVALID_IMAGE), the CPU time of the worst input (process_time,
Pillow's plugins loaded first), and stored files still holding the marker: where a
reader sees it as metadata (Pillow's info or EXIF, or a block or chunk of a dropped
kind: a defect) and where every decoder reads it as image data (a terminator cut
that put it in a frame's LZW data: frames are kept byte for byte). About 10 s for
2,000 cases a format. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable
from io import BytesIO

from PIL import Image, ImageSequence, PngImagePlugin

from xfchat.domain import gif, images, jpeg, png, webp
from xfchat.errors import BadRequest

MARKER = b"QQMARKERQQ"


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = (MARKER + b"exif").decode()
    exif[0x0112] = orientation
    return exif.tobytes()


def a_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", (MARKER + b"tEXt").decode())
    info.add_itxt("XML:com.adobe.xmp", (MARKER + b"iTXt").decode(), zip=False)
    info.add_text("Z", (MARKER + b"zTXt").decode(), zip=True)
    out = BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(out, "PNG", pnginfo=info, exif=_exif(6))
    return out.getvalue()


def a_gif() -> bytes:
    frames = [Image.new("P", (23, 17), color) for color in (1, 2, 3)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    out = BytesIO()
    frames[0].save(
        out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=50,
        comment=MARKER + b"comment", interlace=True,
    )  # fmt: skip
    packet = MARKER + b"xmp"
    xmp = b"\x21\xff\x0bXMP DataXMP" + bytes([len(packet)]) + packet + b"\x00"
    return out.getvalue()[:-1] + xmp + b"\x3b" + MARKER + b"after"


def a_webp() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 230)).save(out, "WEBP", exif=_exif(3), xmp=MARKER + b"xmp")
    return out.getvalue()


def an_animated_webp() -> bytes:
    frames = [Image.new("RGBA", (20, 20), (i * 80, 0, 0, 255)) for i in range(3)]
    out = BytesIO()
    frames[0].save(
        out, "WEBP", save_all=True, append_images=frames[1:], xmp=MARKER + b"xmp", duration=40
    )
    return out.getvalue()


def a_jpeg() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 30), (200, 20, 30)).save(
        out, "JPEG", exif=_exif(8), comment=MARKER + b"com", xmp=MARKER + b"xmp"
    )
    return out.getvalue()


FORMATS: dict[str, tuple[Callable[[], bytes], Callable[[bytes], object]]] = {
    "png": (a_png, png.strip),
    "gif": (a_gif, gif.strip),
    "webp": (a_webp, webp.strip),
    "webp (animated)": (an_animated_webp, webp.strip),
    "jpeg": (a_jpeg, jpeg.strip),
}


def mutated(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        if not out:
            break
        at, op = rng.randrange(len(out)), rng.random()
        if op < 0.4:
            out[at] = rng.randrange(256)
        elif op < 0.55:
            out[at] ^= 1 << rng.randrange(8)
        elif op < 0.7:
            out[at:at] = rng.randbytes(rng.choice((1, 2, 4, 16)))
        elif op < 0.85:
            del out[at : at + rng.choice((1, 2, 4, 16))]
        elif op < 0.92:
            del out[at:]
        else:
            source = rng.randrange(len(out))
            out[at:at] = out[source : source + rng.choice((1, 4, 12, 40))]
    return bytes(out)


def seen_as_metadata(kind: str, stored: bytes) -> bool:
    """Whether a reader finds the marker as metadata: in a block, chunk or segment of a
    kind the strip drops, or in what Pillow reads as metadata."""
    at = stored.index(MARKER)
    if kind == "gif":
        for block in gif.blocks(stored):
            if block.start <= at < block.end:
                return block.kind == gif.EXTENSION and block.label != gif.GRAPHIC_CONTROL
    elif kind == "png":
        return any(p <= at < e and k not in png.KEPT for k, p, e in png.chunks(stored))
    elif kind.startswith("webp"):
        return any(p <= at < e and k not in webp.KEPT for k, p, _, e in webp.chunks(stored))
    else:  # a JPEG: anywhere but in a scan (its header and entropy-coded data)
        scans = (s for s in jpeg.segments(stored) if s.marker == jpeg.SOS)
        return not any(s.start <= at < s.end for s in scans)
    return pillow_sees(stored)


def pillow_sees(stored: bytes) -> bool:
    """Whether the marker is in Pillow's info or EXIF of any frame it reads."""
    seen = ""
    with contextlib.suppress(Exception):  # (a later frame broken: thumbnails take the first)
        with Image.open(BytesIO(stored)) as opened:
            for frame in ImageSequence.Iterator(opened):
                seen += repr(frame.info) + repr(dict(frame.getexif()))
    return MARKER.decode() in seen


def run(kind: str, cases: int, seed: int) -> None:
    make, walk = FORMATS[kind]
    rng = random.Random(seed)
    original = make()
    counts: Counter[str] = Counter()
    worst = 0.0
    for case in range(cases + 1):
        data = original if case == 0 else mutated(rng, original)
        start = time.process_time()
        try:
            walk(data)
        except BadRequest:
            pass
        except Exception:
            counts["walk alone raised other than BadRequest"] += 1
        try:
            stored = images.without_metadata(data)
            images.make_thumbnail(stored)
        except BadRequest as refused:
            counts["refused" if refused.code == "INVALID_IMAGE" else refused.code] += 1
            stored = None
        except Exception:
            counts["PIPELINE RAISED (a defect)"] += 1
            stored = None
        worst = max(worst, time.process_time() - start)
        if stored is None:
            continue
        counts["stored"] += 1
        if MARKER in stored:
            if seen_as_metadata(kind, stored):
                counts["MARKER SEEN AS METADATA (a defect)"] += 1
            else:
                counts["marker in image data"] += 1
    shown = ", ".join(f"{name}: {n:,}" for name, n in sorted(counts.items()))
    print(f"{kind:16} {cases + 1:,} files; {shown}; worst {worst * 1000:.1f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # (Pillow's warnings of damaged EXIF, by the thousand)
    Image.init()  # (Pillow loads its plugins once, on the first file it does not know)
    for kind in FORMATS:
        run(kind, args.cases, args.seed)


if __name__ == "__main__":
    main()
