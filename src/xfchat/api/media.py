"""Uploaded images: your avatar, and serving any stored image."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response

from xfchat.api.deps import (
    AppSettings,
    Conn,
    CurrentActor,
    Pool,
    app_slots,
    check_limit,
    counted_actor,
)
from xfchat.api.downloads import BYTES, file_response
from xfchat.api.edge import UploadRoute
from xfchat.api.models import UserPrivate
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.api.uploads import whole_body
from xfchat.domain import images, media, servers
from xfchat.domain.accounts import Actor
from xfchat.domain.attachments import MAX_FILES
from xfchat.domain.event_payloads import ServerPayload
from xfchat.settings import Settings

router = api_router(tags=["media"])

AVATAR_PATH = "/api/users/@me/avatar"
ICON_PATH = "/api/servers/{server_id}/icon"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}

_BINARY = {"schema": {"type": "string", "format": "binary"}}  # a file picker in /docs
_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image file itself as the body (not a form). Its format is "
        "read from its bytes; the Content-Type is not trusted.",
        "content": {content_type: _BINARY for content_type in IMAGE_TYPES},
    }
}


FORM_OVERHEAD = 1 << 20  # a message with files: the JSON part, part headers, boundaries


def upload_routes(settings: Settings) -> list[UploadRoute]:
    """The routes whose body limit is not XFCHAT_MAX_BODY_BYTES (for the edge)."""
    files = MAX_FILES * settings.attachment_max_bytes + FORM_OVERHEAD
    return [
        ("PUT", re.escape(AVATAR_PATH), settings.avatar_max_bytes, ""),
        ("PUT", r"/api/servers/[^/]+/icon", settings.avatar_max_bytes, ""),
        ("POST", r"/api/channels/[^/]+/messages", files, "multipart/form-data"),
        ("PUT", r"/api/channels/[^/]+/messages/[^/]+", files, "multipart/form-data"),
    ]


def image_slots(request: Request, actor: Actor) -> images.Slots:
    """The app's bound on image decodes running at once, as `actor` takes its slots."""
    return app_slots(request, "image_slots", images.ImageSlots).of(actor.user_id)


UploadActor = Annotated[Actor, Depends(counted_actor("uploads"))]
# an avatar is also a profile change, told to every conversation and server one is in
AvatarActor = Annotated[Actor, Depends(counted_actor("uploads", "profile"))]


@router.put(AVATAR_PATH, openapi_extra=_IMAGE_BODY)
async def put_avatar(
    actor: AvatarActor, request: Request, pool: Pool, settings: AppSettings
) -> UserPrivate:
    """Upload a new avatar (PNG, JPEG, GIF or WebP). It is stored re-encoded and
    `avatar_url` points at it; the previous one is deleted. Counted in `uploads` and,
    as a profile change, in `profile`."""
    data = await whole_body(request)
    user = await media.set_avatar(
        pool,
        actor,
        data,
        max_bytes=settings.avatar_max_bytes,
        quota=settings.upload_quota_bytes,
        slots=image_slots(request, actor),
        deadline_s=settings.send_timeout_s,
    )
    request.app.state.sessions.forget_user(actor.user_id)
    return UserPrivate.of_me(user)


@router.delete(AVATAR_PATH, status_code=204, response_class=Response)
async def delete_avatar(
    actor: CurrentActor, conn: Conn, request: Request, settings: AppSettings
) -> Response:
    """Remove your avatar; an uploaded one is deleted. A profile change, told to every
    conversation and server you are in: counted in `profile` (XFCHAT_RATE_PROFILE_USER)."""
    await check_limit(request, "profile", str(actor.user_id), settings.rate_profile_user, conn)
    await media.clear_avatar(conn, actor)
    request.app.state.sessions.forget_user(actor.user_id)
    return Response(status_code=204)


@router.head(f"{media.MEDIA_PATH}{{media_id}}", response_class=Response)
@router.get(
    f"{media.MEDIA_PATH}{{media_id}}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": BYTES, "image/jpeg": BYTES}},
        304: {"description": "Not modified (If-None-Match)"},
    },
)
async def get_media(media_id: UUID, request: Request, pool: Pool) -> Response:
    """A stored image (an avatar, an icon). No authentication: an <img> cannot send a
    token, and ids are random."""
    async with pool.acquire() as conn:  # (not Conn: no connection held while streaming)
        info = await media.get_media_info(conn, media_id)
    extension = EXTENSIONS[info.content_type]
    headers = {
        # A stored image never changes: a new upload gets a new id.
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Disposition": f'inline; filename="{info.purpose}.{extension}"',
    }
    return file_response(request, pool, info, info.content_type, headers)


@router.put(ICON_PATH, openapi_extra=_IMAGE_BODY, response_model=ServerPayload)
async def put_server_icon(
    server_id: UUID,
    actor: UploadActor,
    request: Request,
    pool: Pool,
    settings: AppSettings,
    reason: AuditReason,
) -> Response:
    """Upload a server's icon (MANAGE_SERVER; PNG, JPEG, GIF or WebP, the avatar's
    limits). It is stored re-encoded and `icon_url` points at it; a previously uploaded
    icon is deleted."""
    data = await whole_body(request)
    server = await media.set_server_icon(
        pool,
        actor,
        server_id,
        data,
        max_bytes=settings.avatar_max_bytes,
        quota=settings.upload_quota_bytes,
        slots=image_slots(request, actor),
        deadline_s=settings.send_timeout_s,
        reason=reason,
    )
    return JSONResponse(server)


@router.delete(ICON_PATH, response_model=ServerPayload)
async def delete_server_icon(
    server_id: UUID, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """Remove a server's icon (MANAGE_SERVER); an uploaded one is deleted."""
    return JSONResponse(
        await servers.update_server(
            conn, actor, server_id, fields={"icon_url": None}, reason=reason
        )
    )
