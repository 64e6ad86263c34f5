from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import threading
import zlib
from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
from pydantic import ValidationError

from tests import factories
from tests.factories import AppWith, MakeUser, TestUser
from tests.support import random_secret, until_one_waits_for_a_lock
from xfchat.db.queries import media as media_q
from xfchat.domain import images, media
from xfchat.domain import servers as servers_domain
from xfchat.errors import BadRequest, PayloadTooLarge
from xfchat.settings import Settings

AVATAR = "/api/users/@me/avatar"
MiB = 1 << 20


# -- Making and reading images ----------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Incompressible pixels: the file is about as large as the raw image."""
    channels = len(mode)
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * channels))


def png_chunks(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def jpeg_markers(data: bytes) -> list[int]:
    """The markers of the segments before the image data."""
    markers, pos = [], 2
    while data[pos + 1] != 0xDA:
        markers.append(data[pos + 1])
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return markers


def progressive_with_scans(scans: int) -> bytes:
    """A small progressive JPEG whose last scan is repeated to make `scans` in all (the
    shape of a file that makes the decoder walk the whole image once a repeat)."""
    data = encoded(Image.new("L", (64, 64), 128), "JPEG", progressive=True)
    last = data.rfind(b"\xff\xda")  # (0xFF in entropy-coded data is never followed by DA)
    extra = scans - data.count(b"\xff\xda")
    return data[:-2] + data[last:-2] * extra + data[-2:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit grey pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 4096) if pixels is None else pixels
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def close_to(pixel: Any, expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def assert_square_and_small(image: Image.Image, side: int) -> None:
    assert image.size == (side, side)
    assert side <= images.OUTPUT_SIDE


# -- Uploading ---------------------------------------------------------------------------


async def upload(
    client: httpx.AsyncClient, user: TestUser, data: bytes, content_type: str = "image/png"
) -> httpx.Response:
    return await client.put(
        AVATAR, headers={**user.headers, "Content-Type": content_type}, content=data
    )


async def upload_and_fetch(
    client: httpx.AsyncClient, user: TestUser, data: bytes, content_type: str = "image/png"
) -> tuple[dict[str, Any], httpx.Response]:
    response = await upload(client, user, data, content_type)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["avatar_url"].startswith("/api/media/")
    served = await client.get(body["avatar_url"])  # no token: <img> cannot send one
    assert served.status_code == 200, served.text
    return body, served


async def media_rows(conn: asyncpg.Connection, owner: UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM media WHERE owner_id = $1", owner))


# -- Each accepted type ------------------------------------------------------------------


async def test_upload_png_with_alpha_is_stored_as_png_without_text_chunks(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    image = Image.new("RGBA", (800, 600), (255, 0, 0, 255))
    image.paste((0, 0, 255, 64), (400, 0, 800, 600))  # the right half mostly transparent
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "taken at 12 Secret Street")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encoded(image, "PNG", pnginfo=text, icc_profile=icc)
    assert b"Secret Street" in data and b"iCCP" in data
    # The declared type is ignored: the bytes say PNG.
    _, served = await upload_and_fetch(client, user, data, content_type="image/jpeg")

    assert served.headers["content-type"] == "image/png"
    result = Image.open(BytesIO(served.content))
    assert result.format == "PNG" and result.mode == "RGBA"
    assert_square_and_small(result, 512)
    assert close_to(result.getpixel((5, 256)), (255, 0, 0, 255))
    assert close_to(result.getpixel((506, 256)), (0, 0, 255, 64))
    assert b"Secret Street" not in served.content
    assert set(png_chunks(served.content)) <= {b"IHDR", b"IDAT", b"IEND"}


@pytest.mark.parametrize(
    ("size", "side"),
    [((300, 200), 200), ((2400, 1600), 512)],  # the large one is decoded at 1/2 scale
)
async def test_upload_jpeg_is_turned_upright_and_loses_exif_gps_and_icc(
    client: httpx.AsyncClient, make_user: MakeUser, size: tuple[int, int], side: int
) -> None:
    user = await make_user()
    image, exif, icc = factories.located_photo(size)
    data = encoded(image, "JPEG", exif=exif, icc_profile=icc, comment=b"a comment")
    sent = Image.open(BytesIO(data))
    assert sent.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the upload really carries GPS
    assert "icc_profile" in sent.info and b"SpyCam" in data

    _, served = await upload_and_fetch(client, user, data, content_type="image/jpeg")

    assert served.headers["content-type"] == "image/jpeg"
    result = Image.open(BytesIO(served.content))
    assert result.format == "JPEG"
    assert_square_and_small(result, side)  # never scaled up
    # Upright: what was the left edge is now the top.
    assert close_to(result.getpixel((side // 2, 10)), (255, 0, 0), 30)
    assert close_to(result.getpixel((side // 2, side - 10)), (0, 0, 255), 30)
    assert not result.getexif() and "icc_profile" not in result.info
    assert "comment" not in result.info and b"SpyCam" not in served.content
    # Only JFIF, quantisation and Huffman tables, the frame: no APP1 (EXIF, XMP),
    # APP2 (ICC) or COM segment.
    assert set(jpeg_markers(served.content)) <= {0xE0, 0xDB, 0xC4, 0xC0, 0xC2}


async def test_upload_animated_gif_keeps_only_the_first_frame(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    first = Image.new("RGB", (64, 48), (255, 0, 0))
    second = Image.new("RGB", (64, 48), (0, 255, 0))
    data = encoded(
        first, "GIF", save_all=True, append_images=[second], duration=100, comment=b"gif-note"
    )
    assert Image.open(BytesIO(data)).n_frames == 2
    _, served = await upload_and_fetch(client, user, data, content_type="image/gif")

    result = Image.open(BytesIO(served.content))
    assert result.format == "JPEG"  # no transparency
    assert getattr(result, "n_frames", 1) == 1
    assert_square_and_small(result, 48)
    assert close_to(result.getpixel((24, 24)), (255, 0, 0), 30)
    assert b"gif-note" not in served.content


async def test_upload_gif_with_transparency_is_stored_as_png(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 255, 255, 0])
    image.paste(0, (0, 0, 20, 40))
    _, served = await upload_and_fetch(client, user, encoded(image, "GIF", transparency=0))
    result = Image.open(BytesIO(served.content))
    assert result.format == "PNG" and result.mode == "RGBA"
    assert result.getpixel((5, 20))[3] == 0 and result.getpixel((35, 20)) == (255, 255, 0, 255)


async def test_upload_animated_webp_is_scaled_down_to_512(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    first = Image.new("RGB", (1024, 768), (0, 0, 255))
    second = Image.new("RGB", (1024, 768), (255, 255, 0))
    data = encoded(first, "WEBP", save_all=True, append_images=[second], duration=100)
    _, served = await upload_and_fetch(client, user, data, content_type="image/webp")

    result = Image.open(BytesIO(served.content))
    assert result.format == "JPEG"
    assert_square_and_small(result, 512)
    assert close_to(result.getpixel((256, 256)), (0, 0, 255), 30)


async def test_upload_16_bit_grey_png_keeps_its_brightness(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    _, served = await upload_and_fetch(
        client, user, encoded(Image.new("I;16", (64, 64), 40000), "PNG")
    )
    result = Image.open(BytesIO(served.content))
    assert result.format == "JPEG" and abs(int(result.convert("L").getpixel((8, 8))) - 156) <= 3


# -- Refused uploads ---------------------------------------------------------------------


def _jpeg_over_the_sniff_window() -> bytes:
    data = encoded(noise((64, 64)), "JPEG")
    assert len(data) > images.SNIFF_WINDOW
    return data


POLYGLOTS = {
    "gif comment holding a script": lambda: encoded(
        Image.new("P", (16, 16)), "GIF", comment=b"<script>alert(1)</script>"
    ),
    "png text chunk holding html": lambda: encoded(
        Image.new("RGB", (16, 16)),
        "PNG",
        pnginfo=_png_text("x", "<html><body onload=alert(1)>"),
    ),
    "jpeg comment holding php": lambda: encoded(
        Image.new("RGB", (16, 16)), "JPEG", comment=b"<?php system($_GET['c']); ?>"
    ),
    "png with html after IEND": lambda: (
        encoded(noise((64, 64)), "PNG") + b"<html><script>alert(1)</script></html>"
    ),
    "gif with data after its trailer": lambda: encoded(Image.new("P", (16, 16)), "GIF") + b"xyz",
    "webp with data after its RIFF size": lambda: (
        encoded(Image.new("RGB", (16, 16)), "WEBP") + b"\x00\x00trailing"
    ),
    "jpeg with html after EOI": lambda: (
        _jpeg_over_the_sniff_window() + b"<!DOCTYPE html><script>alert(1)</script>"
    ),
}


def _png_text(key: str, value: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize("name", sorted(POLYGLOTS))
async def test_upload_polyglot_is_400(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection, name: str
) -> None:
    user = await make_user()
    data = POLYGLOTS[name]()
    Image.open(BytesIO(data)).load()  # Pillow alone would take it as an image
    response = await upload(client, user, data)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_IMAGE"
    assert await media_rows(conn, user.id) == 0


async def test_jpeg_with_another_image_after_its_end_is_accepted(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    # What phones write: a gain map (Ultra HDR) or more pictures (MPO) after the end.
    user = await make_user()
    first = encoded(Image.new("RGB", (32, 32), (255, 0, 0)), "JPEG")
    data = first + encoded(noise((32, 32)), "JPEG")
    _, served = await upload_and_fetch(client, user, data, content_type="image/jpeg")
    result = Image.open(BytesIO(served.content))
    assert close_to(result.getpixel((16, 16)), (255, 0, 0), 30)


NOT_IMAGES = {
    "empty": lambda: b"",
    "text": lambda: b"hello, this is not an image at all\n" * 10,
    "svg": lambda: (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" '
        b'height="10"><script>alert(1)</script></svg>'
    ),
    "bmp, an image Pillow reads but we do not accept": lambda: encoded(
        Image.new("RGB", (16, 16)), "BMP"
    ),
    "truncated png": lambda: encoded(noise((64, 64)), "PNG")[:3000],
    "png with a broken pixel stream": lambda: png_declaring(64, 64, b"not zlib data" * 8),
    "truncated jpeg": lambda: encoded(noise((64, 64)), "JPEG")[:1500],
}


@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
async def test_upload_of_a_non_image_or_a_damaged_one_is_400(
    client: httpx.AsyncClient, make_user: MakeUser, name: str
) -> None:
    user = await make_user()
    response = await upload(client, user, NOT_IMAGES[name]())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_IMAGE"


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((images.MAX_SIDE + 1, 1), "each side"),
        ((1, images.MAX_SIDE + 1), "each side"),
        ((6400, 6400), "pixels"),  # 41 megapixels, each side within bounds
        ((4100, 4000), "16,000,000 pixels"),  # a PNG decodes whole: 16 at most
    ],
)
async def test_upload_beyond_the_pixel_bounds_is_400(
    client: httpx.AsyncClient, make_user: MakeUser, size: tuple[int, int], message: str
) -> None:
    # Sound, small files that Pillow would decode: only our bounds refuse them.
    user = await make_user()
    assert size[0] * size[1] > images.MAX_LOSSLESS_PIXELS or max(size) > images.MAX_SIDE
    response = await upload(client, user, encoded(Image.new("L", size), "PNG"))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_IMAGE" and message in response.json()["message"]


async def test_upload_of_a_decompression_bomb_is_400(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    bomb = png_declaring(50_000, 50_000)  # 2.5 gigapixels in a few hundred bytes
    assert len(bomb) < 1000
    response = await upload(client, user, bomb)
    assert response.status_code == 400 and response.json()["code"] == "INVALID_IMAGE"
    assert "pixels" in response.json()["message"]


# -- Size limits -------------------------------------------------------------------------


async def test_a_jpeg_of_too_many_scans_is_refused_before_decoding(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    most = progressive_with_scans(images.MAX_JPEG_SCANS)
    assert images.make_thumbnail(most).width == 64
    assert (await upload(client, user, most, "image/jpeg")).status_code == 200
    over = progressive_with_scans(images.MAX_JPEG_SCANS + 1)
    refused = await upload(client, user, over, "image/jpeg")
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID_IMAGE"
    assert f"more than {images.MAX_JPEG_SCANS} scans" in refused.json()["message"]
    with pytest.raises(BadRequest, match="scans"):
        images.make_thumbnail(over)


def test_thumbnails_check_the_size_before_reading_exif() -> None:
    # getexif decodes a whole PNG (an eXIf chunk may follow the pixels): a 13000x13000
    # one took 2.2 s and 675 MB before the bounds refused it as damaged.
    with pytest.raises(BadRequest, match="each side may be at most"):
        images.make_thumbnail(png_declaring(10_001, 8_000))
    with pytest.raises(BadRequest, match="at most 16,000,000 pixels"):
        images.make_thumbnail(png_declaring(9_000, 9_000))


def jpeg_claiming(mode: str, size: tuple[int, int]) -> bytes:
    """A small progressive 4:4:4 JPEG whose frame header claims `size`."""
    data = encoded(Image.new(mode, (16, 16)), "JPEG", progressive=True, subsampling=0)
    at = data.index(b"\xff\xc2") + 2  # the frame header's length, then P, Y, X
    claim = struct.pack(">HH", size[1], size[0])
    return data[: at + 3] + claim + data[at + 7 :]


def test_a_progressive_jpeg_whose_coefficients_take_too_much_memory_is_refused() -> None:
    # libjpeg holds every coefficient of a progressive JPEG, whatever the scale: 8 bytes a
    # pixel for CMYK (81 MP measured 623 MB), 6 for 4:4:4 colour.
    with pytest.raises(BadRequest, match="too large to decode"):
        images.make_thumbnail(jpeg_claiming("CMYK", (9_000, 9_000)))
    assert images.make_thumbnail(jpeg_claiming("RGB", (4_000, 3_000))).width == 4_000
    # Any colour JPEG within the pixel bound still passes, at 4:4:4 too.
    widest = 3 * 128 * (20_000 // 8) * -(-4_450 // 8)
    assert images.MAX_PIXELS >= 20_000 * 4_450 and images.MAX_JPEG_COEFFICIENT_BYTES >= widest


async def test_an_avatar_not_decoded_in_time_is_503_image_busy(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    app.state.image_slots = images.ImageSlots(0)  # every decode slot held (by slow files)
    app.state.settings = app.state.settings.model_copy(update={"send_timeout_s": 0.3})
    data = encoded(Image.new("RGB", (16, 16)), "PNG")
    busy = await asyncio.wait_for(upload(client, user, data), 10)  # (it used to hang)
    assert busy.status_code == 503 and busy.json()["code"] == "IMAGE_BUSY"
    assert busy.headers["retry-after"] == "1"
    srv = await factories.community(client, user)
    icon = await asyncio.wait_for(
        client.put(
            srv.url("/icon"), headers={**user.headers, "Content-Type": "image/png"}, content=data
        ),
        10,
    )
    assert icon.status_code == 503 and icon.json()["code"] == "IMAGE_BUSY"
    assert await media_rows(conn, user.id) == 0


async def test_upload_over_the_avatar_limit_is_413(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    response = await upload(client, user, b"\x89PNG" + b"\x00" * (8 * MiB))
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    # Refused by its Content-Length, before the body is read, at the avatar's limit.
    assert "request body is larger than 8388608 bytes" in response.json()["message"]


async def test_streamed_upload_over_a_configured_limit_is_413(
    app_with: AppWith, make_user: MakeUser
) -> None:
    client = await app_with(avatar_max_bytes=256 * 1024)
    user = await make_user()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length
        for _ in range(5):
            yield b"\x00" * 65536

    response = await client.put(AVATAR, headers=user.headers, content=chunks())
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    # Refused by the edge while the body streams in, at the avatar's limit.
    assert "request body is larger than 262144 bytes" in response.json()["message"]


async def test_upload_over_the_general_body_limit_is_accepted_on_the_avatar_route_only(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    data = encoded(noise((1000, 1000)), "PNG")  # about 3 MB
    assert 2 * MiB < len(data) < 8 * MiB
    _, served = await upload_and_fetch(client, user, data)
    assert Image.open(BytesIO(served.content)).size == (512, 512)
    # Elsewhere the general 1 MiB limit stands.
    other = await client.post(
        AVATAR.removesuffix("/avatar") + "/password", headers=user.headers, content=data
    )
    assert other.status_code == 413
    wrong_method = await client.post(AVATAR, headers=user.headers, content=data)
    assert wrong_method.status_code == 413


async def test_set_avatar_itself_refuses_more_than_its_limit(
    pool: asyncpg.Pool, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    data = encoded(Image.new("RGB", (16, 16)), "PNG")
    with pytest.raises(PayloadTooLarge):
        await media.set_avatar(
            pool,
            user.actor,
            data,
            max_bytes=len(data) - 1,
            quota=1 << 30,
            slots=asyncio.Semaphore(1),
            deadline_s=10,
        )
    assert await media_rows(conn, user.id) == 0


def test_avatar_limit_setting_is_bounded_to_25_mib() -> None:
    with pytest.raises(ValidationError, match="avatar_max_bytes"):
        Settings(secret=random_secret(), avatar_max_bytes=25 * MiB + 1)  # type: ignore[call-arg]
    assert Settings(secret=random_secret()).avatar_max_bytes == 8 * MiB  # type: ignore[call-arg]


# -- Serving -----------------------------------------------------------------------------


async def test_served_image_has_caching_and_safety_headers(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    _, served = await upload_and_fetch(client, user, encoded(Image.new("RGB", (64, 64)), "PNG"))
    headers = served.headers
    etag = f'"{hashlib.sha256(served.content).hexdigest()}"'
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-length"] == str(len(served.content))
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["etag"] == etag
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert headers["content-disposition"] == 'inline; filename="avatar.jpg"'

    url = str(served.request.url)
    for if_none_match in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = await client.get(url, headers={"If-None-Match": if_none_match})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=31536000, immutable"
    changed = await client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == served.content

    head = await client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(served.content))
    assert head.headers["etag"] == etag and head.headers["content-type"] == "image/jpeg"


async def test_unknown_media_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/media/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    head = await client.head("/api/media/00000000-0000-4000-8000-000000000000")
    assert head.status_code == 404


async def test_replacing_the_avatar_makes_the_old_url_404_and_keeps_one_row(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    first, _ = await upload_and_fetch(client, user, encoded(Image.new("RGB", (32, 32)), "PNG"))
    second, _ = await upload_and_fetch(
        client, user, encoded(Image.new("RGB", (32, 32), (9, 9, 9)), "GIF")
    )
    assert first["avatar_url"] != second["avatar_url"]
    gone = await client.get(first["avatar_url"])
    assert gone.status_code == 404 and gone.json()["code"] == "NOT_FOUND"
    assert await media_rows(conn, user.id) == 1
    me = (await client.get("/api/users/@me", headers=user.headers)).json()
    assert me["avatar_url"] == second["avatar_url"]


async def test_patching_the_profile_keeps_or_frees_an_uploaded_avatar(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    body, _ = await upload_and_fetch(client, user, encoded(Image.new("RGB", (32, 32)), "PNG"))
    # A client that sends its user object back unchanged is not refused.
    same = await client.patch(
        "/api/users/@me",
        headers=user.headers,
        json={"avatar_url": body["avatar_url"], "display_name": "Me"},
    )
    assert same.status_code == 200 and same.json()["avatar_url"] == body["avatar_url"]
    forged = await client.patch(
        "/api/users/@me", headers=user.headers, json={"avatar_url": "/api/media/elsewhere"}
    )
    assert forged.status_code == 400 and forged.json()["code"] == "INVALID_AVATAR_URL"
    external = await client.patch(
        "/api/users/@me", headers=user.headers, json={"avatar_url": "https://example.com/a.png"}
    )
    assert external.status_code == 200
    assert (await client.get(body["avatar_url"])).status_code == 404  # freed at once
    assert await media_rows(conn, user.id) == 0


async def test_delete_avatar_clears_the_url_and_the_image(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    body, _ = await upload_and_fetch(client, user, encoded(Image.new("RGB", (32, 32)), "PNG"))
    other = await make_user()
    kept, _ = await upload_and_fetch(client, other, encoded(Image.new("RGB", (32, 32)), "PNG"))

    response = await client.delete(AVATAR, headers=user.headers)
    assert response.status_code == 204
    me = (await client.get("/api/users/@me", headers=user.headers)).json()
    assert me["avatar_url"] is None
    assert (await client.get(body["avatar_url"])).status_code == 404
    assert await media_rows(conn, user.id) == 0
    assert (await client.delete(AVATAR, headers=user.headers)).status_code == 204
    assert (await client.get(kept["avatar_url"])).status_code == 200  # others' stay


async def test_clearing_the_avatar_counts_as_a_profile_change_and_tells_only_a_change(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith, conn: asyncpg.Connection
) -> None:
    """A profile change writes an event on every conversation and server one is in:
    `DELETE .../avatar` was counted only in the API's 600 a minute (each one, avatar or
    none, told everyone) while PATCH is held to `profile`."""
    user, friend = await make_user(), await make_user()
    await factories.direct(client, user, friend)
    before = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'user.updated'")
    limited = await app_with(rate_profile_user="3/600")
    asked = [(await limited.delete(AVATAR, headers=user.headers)).status_code for _ in range(4)]
    assert asked == [204, 204, 204, 429]
    after = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'user.updated'")
    assert after == before  # (there was no avatar to clear)


async def test_uploading_an_avatar_counts_as_a_profile_change_too(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """An avatar upload tells every conversation and server one is in, as PATCH does: it
    was counted only in `uploads`, so avatars and PATCHes together doubled `profile`."""
    limited = await app_with(rate_profile_user="3/600", rate_uploads_user="100/600")
    user = await make_user()
    data = encoded(Image.new("RGB", (16, 16)), "PNG")
    patched = await limited.patch(
        "/api/users/@me", json={"status_text": "hi"}, headers=user.headers
    )
    uploads = [(await upload(limited, user, data)).status_code for _ in range(3)]
    assert [patched.status_code, *uploads] == [200, 200, 200, 429]
    assert (await limited.delete(AVATAR, headers=user.headers)).status_code == 429


async def test_avatar_change_is_announced_and_counted_in_usage(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    body, served = await upload_and_fetch(client, user, encoded(Image.new("RGB", (32, 32)), "PNG"))
    await client.delete(AVATAR, headers=user.headers)
    updates = [
        data["avatar_url"]
        for kind, data in await factories.events_of(conn, "user", user.id)
        if kind == "user.updated"
    ]
    assert updates == [body["avatar_url"], None]
    usage = (await client.get("/api/users/@me/usage", headers=user.headers)).json()
    assert usage[0]["bytes_uploaded"] == len(served.content)


async def test_uploads_need_a_token_and_are_rate_limited(
    app_with: AppWith, make_user: MakeUser
) -> None:
    client = await app_with(rate_uploads_user="2/600")
    user = await make_user()
    data = encoded(Image.new("RGB", (16, 16)), "PNG")
    anonymous = await client.put(AVATAR, content=data)
    assert anonymous.status_code == 401
    codes = [(await upload(client, user, data)).status_code for _ in range(2)]
    refused = await upload(client, user, b"not even an image")  # refused ones count too
    assert codes == [200, 200] and refused.status_code == 429
    assert refused.json()["bucket"] == "uploads"
    assert (await client.get("/api/users/@me", headers=user.headers)).status_code == 200


async def test_openapi_documents_the_upload_body_as_binary_images(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"][AVATAR]["put"]["requestBody"]["content"]
    assert set(body) == {"image/png", "image/jpeg", "image/gif", "image/webp"}
    assert body["image/webp"]["schema"] == {"type": "string", "format": "binary"}


# -- The bound on decodes at once --------------------------------------------------------


async def test_image_jobs_run_at_most_two_at_once_even_when_abandoned() -> None:
    slots = asyncio.Semaphore(images.IMAGE_JOBS)
    gate = threading.Event()
    lock = threading.Lock()
    running = peak = started = 0

    def job(data: bytes) -> images.EncodedImage:
        nonlocal running, peak, started
        with lock:
            running += 1
            started += 1
            peak = max(peak, running)
        gate.wait(10)
        with lock:
            running -= 1
        return images.EncodedImage(data, "image/png", 1, 1, b"\x00" * 32)

    tasks = [asyncio.create_task(images.run_image_job(slots, job, b"x")) for _ in range(5)]
    for _ in range(500):
        if started == 2:
            break
        await asyncio.sleep(0.01)
    # The two running requests are abandoned: their threads still run, so still no
    # third decode may start.
    tasks[0].cancel()
    tasks[1].cancel()
    await asyncio.sleep(0.2)
    assert (started, running) == (2, 2)
    gate.set()
    results = await asyncio.gather(*tasks[2:])
    assert [r.data for r in results] == [b"x"] * 3
    assert peak == 2 and started == 5
    assert all(t.cancelled() for t in tasks[:2])


async def test_one_user_holds_at_most_one_image_slot() -> None:
    """Was: one account's two sends of slow thumbnails held both slots of a process,
    and everyone else's file sends and avatars waited until they timed out."""
    slots = images.ImageSlots()
    gate = threading.Event()
    started: list[bytes] = []

    def job(data: bytes) -> bytes:
        started.append(data)
        gate.wait(10)
        return data

    ann, ben = UUID(int=1), UUID(int=2)
    anns = [asyncio.create_task(images.run_image_job(slots.of(ann), job, b"ann")) for _ in "12"]
    for _ in range(500):
        if started:
            break
        await asyncio.sleep(0.01)
    # The other slot is free for ben while ann's second job waits for her first.
    bens = asyncio.create_task(images.run_image_job(slots.of(ben), job, b"ben"))
    for _ in range(500):
        if len(started) == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert sorted(started) == [b"ann", b"ben"]
    anns[1].cancel()  # (a waiter that gives up takes nothing with it)
    gate.set()
    assert await anns[0] == b"ann" and await bens == b"ben"
    assert anns[1].cancelled() and slots.jobs._value == images.IMAGE_JOBS
    assert not slots._turns
    assert await images.run_image_job(slots.of(ann), job, b"again") == b"again"


async def test_server_icons_take_the_avatar_path_and_free_what_they_replace(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    url = srv.url("/icon")
    png = encoded(noise((64, 40)), "PNG")
    refused = await client.put(
        url, headers={**ben.headers, "Content-Type": "image/png"}, content=png
    )
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    hidden = await client.put(
        f"/api/servers/{UUID(int=7)}/icon",
        headers={**ann.headers, "Content-Type": "image/png"},
        content=png,
    )
    assert hidden.status_code == 404 and hidden.json()["code"] == "SERVER_NOT_FOUND"
    bad = await client.put(
        url, headers={**ann.headers, "Content-Type": "image/png"}, content=b"<html>no</html>"
    )
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_IMAGE"
    first = await client.put(
        url,
        headers={**ann.headers, "Content-Type": "image/png", "X-Audit-Log-Reason": "new%20look"},
        content=png,
    )
    assert first.status_code == 200, first.text
    icon = first.json()["icon_url"]
    served = await client.get(icon)
    assert served.status_code == 200
    assert Image.open(BytesIO(served.content)).size == (40, 40)  # square, as avatars
    second = await client.put(
        url, headers={**ann.headers, "Content-Type": "image/png"}, content=png
    )
    assert second.json()["icon_url"] != icon
    assert (await client.get(icon)).status_code == 404  # the one it replaced is gone
    log = await client.get(srv.url("/audit-log?action=server.updated"), headers=ann.headers)
    assert [e["reason"] for e in log.json()] == [None, "new look"]
    assert (await client.delete(url, headers=ben.headers)).status_code == 403
    gone = await client.delete(f"/api/servers/{UUID(int=7)}/icon", headers=ann.headers)
    assert gone.status_code == 404
    cleared = await client.delete(url, headers=ann.headers)
    assert cleared.status_code == 200 and cleared.json()["icon_url"] is None
    assert (await client.get(second.json()["icon_url"])).status_code == 404
    # An icon pointing at someone's avatar is never deleted with it.
    avatar = (await upload(client, ben, png)).json()["avatar_url"]
    await client.patch(srv.url(), headers=ann.headers, json={"icon_url": avatar})
    await client.delete(url, headers=ann.headers)
    assert (await client.get(avatar)).status_code == 200
    async with pool.acquire() as conn:
        assert await media_rows(conn, ann.id) == 0
    # Deleting the server deletes its uploaded icon.
    third = await client.put(url, headers={**ann.headers, "Content-Type": "image/png"}, content=png)
    assert (await client.delete(srv.url(), headers=ann.headers)).status_code == 204
    assert (await client.get(third.json()["icon_url"])).status_code == 404


async def two_servers_and_an_icon(
    client: httpx.AsyncClient, ann: TestUser
) -> tuple[factories.Community, factories.Community, str]:
    """Two of ann's servers, and an icon she uploaded to the first (its URL)."""
    one, two = await factories.community(client, ann), await factories.community(client, ann)
    png = encoded(noise((40, 40)), "PNG")
    uploaded = await client.put(
        one.url("/icon"), headers={**ann.headers, "Content-Type": "image/png"}, content=png
    )
    return one, two, str(uploaded.json()["icon_url"])


async def test_two_servers_clearing_a_shared_icon_at_once_delete_it(
    client: httpx.AsyncClient, make_user: MakeUser, db_url: str
) -> None:
    ann = await make_user("ann")
    one, two, url = await two_servers_and_an_icon(client, ann)
    shared = await client.patch(two.url(), headers=ann.headers, json={"icon_url": url})
    assert shared.status_code == 200, shared.text
    first, second = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        # Both servers stop showing it, each in its own transaction, at the same time.
        await first.execute("BEGIN")
        await first.execute("UPDATE servers SET icon_url = NULL WHERE id = $1", UUID(one.id))
        assert not await media_q.delete_uploaded_icon(first, url=url)  # two still shows it
        await second.execute("BEGIN")
        await second.execute("UPDATE servers SET icon_url = NULL WHERE id = $1", UUID(two.id))
        deleting = asyncio.create_task(media_q.delete_uploaded_icon(second, url=url))
        await asyncio.sleep(0.2)
        await first.execute("COMMIT")
        assert await asyncio.wait_for(deleting, 5)  # it saw one's change: nobody shows it
        await second.execute("COMMIT")
    finally:
        await first.close()
        await second.close()
    assert (await client.get(url)).status_code == 404


async def test_an_icon_one_server_takes_up_while_another_drops_it_is_kept(
    client: httpx.AsyncClient, make_user: MakeUser, db_url: str, conn: asyncpg.Connection
) -> None:
    """A server taking up an uploaded icon read it without a lock: another dropping it at
    that moment did not see the first's uncommitted change and deleted the image, so
    the first showed a 404. The check share-locks it: the deletion waits, then sees."""
    ann = await make_user("ann")
    one, two, url = await two_servers_and_an_icon(client, ann)
    adopt, drop = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        await adopt.execute("BEGIN")
        await servers_domain._check_uploaded_icon(adopt, ann.actor, url)
        await adopt.execute("UPDATE servers SET icon_url = $2 WHERE id = $1", UUID(two.id), url)
        await drop.execute("BEGIN")
        await drop.execute("UPDATE servers SET icon_url = NULL WHERE id = $1", UUID(one.id))
        deleting = asyncio.create_task(media_q.delete_uploaded_icon(drop, url=url))
        await until_one_waits_for_a_lock(conn, deleting)
        await adopt.execute("COMMIT")
        assert not await asyncio.wait_for(deleting, 5)  # two shows it now
        await drop.execute("COMMIT")
    finally:
        await adopt.close()
        await drop.close()
    assert (await client.get(url)).status_code == 200


async def test_replacing_an_avatar_or_icon_at_the_quota_counts_only_the_difference(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    srv = await factories.community(client, user)
    png = encoded(noise((64, 64)), "PNG")
    assert (await upload(client, user, png)).status_code == 200
    icon = srv.url("/icon")
    headers = {**user.headers, "Content-Type": "image/png"}
    assert (await client.put(icon, headers=headers, content=png)).status_code == 200
    owned = await conn.fetchval("SELECT sum(size_bytes) FROM files WHERE owner_id = $1", user.id)
    app.state.settings = app.state.settings.model_copy(update={"upload_quota_bytes": owned})
    again = await upload(client, user, png)  # the same size again: no more than before
    assert again.status_code == 200, again.text
    assert (await client.put(icon, headers=headers, content=png)).status_code == 200
    bigger = await upload(client, user, encoded(noise((65, 65)), "PNG"))
    assert bigger.status_code == 413 and bigger.json()["code"] == "QUOTA_EXCEEDED"
    assert await media_rows(conn, user.id) == 2  # one avatar, one icon
