"""A JPEG attachment's metadata is dropped without touching its pixels: wherever a
metadata segment sits (after JFIF, between the scans of a progressive JPEG), and
whatever fill bytes come before a segment it keeps."""

from __future__ import annotations

from io import BytesIO

from PIL import Image

from xfchat.domain import images


def jpeg(*, progressive: bool = False, exif: bytes | None = None) -> bytes:
    image = Image.new("RGB", (64, 48))
    image.putdata([(x * 4, y * 5, (x * y) % 256) for y in range(48) for x in range(64)])
    out = BytesIO()
    extra = {"exif": exif} if exif is not None else {}
    image.save(out, format="JPEG", quality=85, progressive=progressive, **extra)
    return out.getvalue()


def located(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return exif.tobytes()


def segment(marker: int, body: bytes, fill: bytes = b"") -> bytes:
    return b"\xff" + fill + bytes([marker]) + (len(body) + 2).to_bytes(2, "big") + body


def pixels(data: bytes) -> bytes:
    with Image.open(BytesIO(data)) as image:
        return image.tobytes()


def test_the_position_goes_the_orientation_stays_the_pixels_are_the_same() -> None:
    for progressive in (False, True):
        original = jpeg(progressive=progressive, exif=located())
        clean = images.without_metadata(original)
        assert pixels(clean) == pixels(original)
        with Image.open(BytesIO(clean)) as image:
            exif = image.getexif()
            assert exif.get(0x0112) == 6 and not exif.get_ifd(0x8825)
        assert b"CameraMaker" not in clean


def test_metadata_anywhere_goes_and_what_colours_need_stays() -> None:
    plain = jpeg(progressive=True)
    # JFXX (an APP0 that is not JFIF) carries a thumbnail of its own.
    jfxx = segment(0xE0, b"JFXX\x00\x10" + b"THUMBNAIL-SECRET" * 4)
    # An EXIF segment between two scans of a progressive JPEG.
    exif = segment(0xE1, b"Exif\x00\x00" + located(1))
    second_scan = plain.index(b"\xff\xda", plain.index(b"\xff\xda") + 2)
    # An ICC profile after a fill byte (0xFF 0xFF 0xE2 ...).
    icc = segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + b"x" * 20, fill=b"\xff")
    hostile = plain[:2] + jfxx + icc + plain[2:second_scan] + exif + plain[second_scan:]
    clean = images.without_metadata(hostile)
    assert b"THUMBNAIL-SECRET" not in clean and b"CameraMaker" not in clean
    assert b"ICC_PROFILE" in clean and b"JFIF\x00" in clean
    assert pixels(clean) == pixels(plain)
