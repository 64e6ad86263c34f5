"""A JPEG attachment's metadata is dropped without touching its pixels: wherever a
metadata segment sits (after JFIF, between the scans of a progressive JPEG), and
whatever fill bytes come before a segment it keeps; and its walk is bounded (segments,
fill bytes), whatever the file makes of it."""

from __future__ import annotations

import tracemalloc
from io import BytesIO

import pytest
from PIL import Image, ImageCms

from xfchat.domain import images
from xfchat.domain import jpeg as jpeg_structure
from xfchat.errors import BadRequest


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


def srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


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
    # An ICC profile after a fill byte (0xFF 0xFF 0xE2 ...). (It was 20 bytes of "x":
    # what is not a profile goes now, test_icc_and_adobe_are_kept_only_well_formed.)
    icc = segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + srgb(), fill=b"\xff")
    hostile = plain[:2] + jfxx + icc + plain[2:second_scan] + exif + plain[second_scan:]
    clean = images.without_metadata(hostile)
    assert b"THUMBNAIL-SECRET" not in clean and b"CameraMaker" not in clean
    assert b"ICC_PROFILE" in clean and b"JFIF\x00" in clean
    assert pixels(clean) == pixels(plain)


def empty_comments(count: int) -> bytes:
    return b"\xff\xfe\x00\x02" * count


def test_a_jpeg_of_too_many_segments_is_refused_at_the_bound() -> None:
    plain = jpeg()
    walked = sum(1 for _ in jpeg_structure.segments(plain))
    room = jpeg_structure.MAX_JPEG_SEGMENTS - walked
    at_the_bound = plain[:2] + empty_comments(room) + plain[2:]
    assert images.without_metadata(at_the_bound) == images.without_metadata(plain)
    over = plain[:2] + empty_comments(room + 1) + plain[2:]
    with pytest.raises(BadRequest) as refused:
        images.without_metadata(over)
    assert refused.value.code == "INVALID_IMAGE" and "segments" in refused.value.message


def test_a_flood_of_tiny_segments_costs_the_bound_not_the_file() -> None:
    """Was: 8 MiB of two-byte markers (or of empty comments) made a list of 4 million
    segments: 7 s of a core and 650 MB for one attachment, then INVALID_IMAGE."""
    size = 8 << 20
    most = jpeg_structure.MAX_JPEG_SEGMENTS
    for flood, walks, why in (
        (b"\xff\xd0" * (size // 2), most, "segments"),  # (restart markers have no length)
        (empty_comments(size // 4), most, "segments"),
        (b"\xff\x01" * (size // 2), 0, "reserved marker"),  # (TEM: refused at once)
    ):
        data = b"\xff\xd8" + flood + b"\xff\xd9"
        walked = 0
        with pytest.raises(BadRequest):
            for _ in jpeg_structure.segments(data):
                walked += 1
        assert walked == walks  # (the next one is refused)
        tracemalloc.start()
        try:
            with pytest.raises(BadRequest) as refused:
                images.without_metadata(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert why in refused.value.message
        assert peak < 16 << 20  # (generous: the walk holds one segment at a time)


def test_fill_bytes_are_bounded_and_dropped() -> None:
    plain = jpeg()
    most = jpeg_structure.MAX_JPEG_FILL
    padded = plain[:2] + b"\xff" * (most // 2) + plain[2:]
    second = padded.index(b"\xff\xdb")  # (a quantization table: kept)
    padded = padded[:second] + b"\xff" * (most - most // 2) + padded[second:]
    assert images.without_metadata(padded) == plain  # (nothing else to drop)
    over = padded[:second] + b"\xff" + padded[second:]
    with pytest.raises(BadRequest) as refused:
        images.without_metadata(over)
    assert "fill bytes" in refused.value.message
    endless = plain[:2] + b"\xff" * (8 << 20)
    with pytest.raises(BadRequest):
        images.without_metadata(endless)


def test_avatars_and_thumbnails_walk_a_jpegs_markers_before_pillow_does() -> None:
    """Was: Pillow's own walk of a header of 2 million empty comments took 9 s of a
    core and 137 MB before our walk (after it) refused the file."""
    data = b"\xff\xd8" + empty_comments(2 << 20) + b"\xff\xd9"
    for job in (images.encode_avatar, images.make_thumbnail):
        tracemalloc.start()
        try:
            with pytest.raises(BadRequest) as refused:
                job(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert "segments" in refused.value.message, job
        assert peak < 16 << 20


def after_soi(data: bytes, *inserted: bytes) -> bytes:
    return data[:2] + b"".join(inserted) + data[2:]


def test_jfif_is_cut_to_its_header() -> None:
    """Was: JFIF was kept whole, its own thumbnail and whatever followed it included."""
    plain = jpeg()
    assert plain[2:4] == b"\xff\xe0" and plain[4:6] == b"\x00\x10"  # Pillow's own: kept as is
    header = plain[6:18]  # JFIF\0, version, units, density
    thumbnail = b"\x02\x01" + b"THUMB!"  # 2x1 RGB
    fat = plain[:2] + segment(0xE0, header + thumbnail + b"Exif\x00\x00GPS-SECRET") + plain[20:]
    clean = images.without_metadata(fat)
    assert clean == plain
    short = segment(0xE0, b"JFIF\x00\x01\x02")  # (no density: not a JFIF header)
    assert images.without_metadata(after_soi(plain, short)) == plain


def test_icc_and_adobe_are_kept_only_well_formed() -> None:
    """Was: any APP2 starting ICC_PROFILE\\0 and any APP14 starting Adobe were kept,
    whatever followed; and so were they between the scans, where no decoder reads them."""
    plain, profile = jpeg(), srgb()

    def icc(number: int, count: int, data: bytes) -> bytes:
        return segment(0xE2, b"ICC_PROFILE\x00" + bytes([number, count]) + data)

    half = len(profile) // 2
    two = [icc(1, 2, profile[:half]), icc(2, 2, profile[half:])]
    for chunks in (two, two[::-1]):
        clean = images.without_metadata(after_soi(plain, *chunks))
        with Image.open(BytesIO(clean)) as image:
            assert image.info["icc_profile"] == profile
    for chunks in (
        [icc(1, 1, b"GPS-SECRET" * 20)],  # not a profile
        [two[0]],  # one of two
        [two[0], two[0], two[1]],  # the first twice
        [icc(0, 1, profile)],  # numbered from 1
        [icc(2, 1, profile)],  # of 1
    ):
        assert images.without_metadata(after_soi(plain, *chunks)) == plain, chunks
    adobe = segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
    assert images.without_metadata(after_soi(plain, adobe)) == after_soi(plain, adobe)
    longer = segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01GPS-SECRET")
    assert images.without_metadata(after_soi(plain, longer)) == plain
    progressive = jpeg(progressive=True)
    second_scan = progressive.index(b"\xff\xda", progressive.index(b"\xff\xda") + 2)
    late = two[0] + two[1] + adobe + plain[2:20]  # (and a JFIF)
    between = progressive[:second_scan] + late + progressive[second_scan:]
    assert images.without_metadata(between) == progressive


def test_markers_libjpeg_does_not_read_are_refused_and_dnl_goes() -> None:
    """Was: a stuffed 0x00 or a reserved marker outside a scan was taken for a segment
    and kept, its payload with it (libjpeg skips the one as junk, refuses the other)."""
    plain, progressive = jpeg(), jpeg(progressive=True)
    second_scan = progressive.index(b"\xff\xda", progressive.index(b"\xff\xda") + 2)

    def between_scans(*inserted: bytes) -> bytes:
        return progressive[:second_scan] + b"".join(inserted) + progressive[second_scan:]

    for hostile in (
        after_soi(plain, b"\xff\x00\x00\x0cGPS-SECRET"),
        between_scans(segment(0x02, b"GPS-SECRET")),
        between_scans(segment(0xBF, b"GPS-SECRET")),
        between_scans(b"\xff\x01"),
        after_soi(plain, segment(0xF0, b"GPS-SECRET")),
        between_scans(segment(0xDE, b"GPS-SECRET")),
        after_soi(plain, b"\xff\xd8"),
    ):
        with pytest.raises(BadRequest) as refused:
            images.without_metadata(hostile)
        assert "reserved marker" in refused.value.message
    dnl = segment(0xDC, b"\x00\x30GPS-SECRET")  # (libjpeg skips it unread)
    assert images.without_metadata(between_scans(dnl)) == progressive
