"""Downloading a message's files: GET (or HEAD) with your token, the channel's read
permission checked on every request; streamed, with ranges."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from fastapi import Request, Response

from xfchat.api.deps import CurrentActor, Pool
from xfchat.api.downloads import BYTES, file_response
from xfchat.api.routing import api_router
from xfchat.db.queries.attachments import AttachmentFile
from xfchat.domain import attachments

router = api_router(prefix="/api/attachments/{attachment_id}", tags=["attachments"])

_FILE = {"*/*": BYTES}  # any type: the stored file's
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": _FILE, "description": "The file"},
    206: {"content": _FILE, "description": "The range asked for (Range: bytes=a-b)"},
    304: {"description": "Not modified (If-None-Match)"},
    416: {
        "description": "The range holds no byte: it starts past the end, or is bytes=-0 "
        "(RANGE_NOT_SATISFIABLE)"
    },
}


@router.head("", response_class=Response, responses=_RESPONSES)
@router.get("", response_class=Response, responses=_RESPONSES)
async def get_attachment(
    attachment_id: UUID, request: Request, actor: CurrentActor, pool: Pool
) -> Response:
    """The file as uploaded: images (PNG, JPEG, GIF, WebP) inline, anything else as a
    download under its safe name; with `nosniff` and a sandboxing CSP. 404 for a file
    you may not read, or whose message was deleted."""
    async with pool.acquire() as conn:  # (not Conn: no connection held while streaming)
        found = await attachments.get_attachment_file(conn, actor, attachment_id)
    return _serve(request, pool, found)


@router.head("/thumbnail", response_class=Response, responses=_RESPONSES)
@router.get("/thumbnail", response_class=Response, responses=_RESPONSES)
async def get_thumbnail(
    attachment_id: UUID, request: Request, actor: CurrentActor, pool: Pool
) -> Response:
    """An image attachment's thumbnail (at most 400x400, PNG or JPEG); 404 for other
    files."""
    async with pool.acquire() as conn:
        found = await attachments.get_attachment_file(conn, actor, attachment_id, thumbnail=True)
    return _serve(request, pool, found)


def _serve(request: Request, pool: asyncpg.Pool, found: AttachmentFile) -> Response:
    # Private, and asked again each time (a cheap 304 by ETag): a deleted message's
    # file, or one the reader may no longer see, must not be shown from a cache.
    disposition = attachments.disposition(found.filename, found.content_type)
    headers = {"Cache-Control": "private, no-cache", "Content-Disposition": disposition}
    return file_response(
        request, pool, found, found.content_type, headers, channel_id=found.channel_id
    )
