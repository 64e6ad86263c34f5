"""Servers: create, read, change, hand over, delete; mine; the audit log.

Configuration and moderation routes take an optional `X-Audit-Log-Reason` header (at
most 512 characters, percent-encoded UTF-8 allowed, as Discord's clients send it, or raw
UTF-8; control characters dropped): it is written to the audit log with the change."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import unquote
from uuid import UUID

from fastapi import Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import Conn, CurrentActor, check_limit, header_bytes_text, without_controls
from xfchat.api.models import Text, enforced, omittable
from xfchat.api.pages import page_response
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import servers, unchanged
from xfchat.domain.event_payloads import ServerJoinedPayload, ServerPayload
from xfchat.errors import BadRequest
from xfchat.settings import RateLimit

router = api_router(tags=["servers"])
# A server's search language changed (each change indexes every message of the server
# again), per user: server.search_language, 3 an hour.
LANGUAGE_BUCKET = "server.search_language"
LANGUAGE_CHANGES = RateLimit(3, 3600)


def audit_log_reason(
    # (No bound of its own: the head's 16 KiB bound it, and the reason's 512 characters
    # are INVALID_AUDIT_REASON however they are encoded; 6,144 bytes made 513 characters
    # of four percent-encoded bytes each VALIDATION_ERROR, a hostile client's find.)
    x_audit_log_reason: Annotated[str | None, Header()] = None,
) -> str | None:
    if x_audit_log_reason is None:
        return None
    try:
        text = unquote(header_bytes_text(x_audit_log_reason), errors="strict")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise BadRequest(
            "X-Audit-Log-Reason is text (percent-encoded UTF-8 allowed)",
            code="INVALID_AUDIT_REASON",
            field="reason",
        )
    return servers.audit_reason(without_controls(text))


AuditReason = Annotated[str | None, Depends(audit_log_reason)]


NAME, DESCRIPTION = enforced(servers.MAX_NAME, 1), enforced(servers.MAX_DESCRIPTION)


class ServerIn(BaseModel):
    name: Text = Field(max_length=1024, json_schema_extra=NAME)
    description: Text | None = Field(default=None, max_length=4096, json_schema_extra=DESCRIPTION)


class ServerPatchIn(BaseModel):
    """Only the fields present change; null clears description and icon_url."""

    name: Text | None = Field(default=None, max_length=1024, json_schema_extra=NAME)
    description: Text | None = Field(default=None, max_length=4096, json_schema_extra=DESCRIPTION)
    icon_url: Text | None = Field(default=None, max_length=2048)
    search_language: Text | None = Field(default=None, max_length=64)
    default_notifications: Literal["all", "mentions"] | None = Field(
        default=None,
        description="what members with no setting of their own are notified of: all or "
        "mentions (clients decide; README, Notification settings); never null",
        json_schema_extra=omittable,
    )


class TransferIn(BaseModel):
    owner_id: UUID


class AuditChange(BaseModel):
    key: str
    old_value: Any
    new_value: Any


class AuditEntry(BaseModel):
    id: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    changes: dict[str, Any]
    # An update's changed fields, each {key, old_value, new_value}; null for other
    # actions and for entries written before old values were kept.
    diff: list[AuditChange] | None
    reason: str | None
    created_at: str


@router.post("/api/servers", status_code=201, response_model=ServerJoinedPayload)
async def post_server(body: ServerIn, actor: CurrentActor, conn: Conn) -> Response:
    """Create a server: you own it; it comes with @everyone and a #general channel."""
    made = await servers.create_server(conn, actor, name=body.name, description=body.description)
    return JSONResponse(made, status_code=201)


@router.get("/api/users/@me/servers", response_model=list[ServerPayload])
async def get_my_servers(actor: CurrentActor, conn: Conn) -> Response:
    return JSONResponse(await servers.list_servers(conn, actor))


@router.get("/api/servers/{server_id}", response_model=ServerJoinedPayload)
async def get_server(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """A server you are a member of: its roles, the channels you may see, you."""
    return JSONResponse(await servers.get_server(conn, actor, server_id))


@router.patch("/api/servers/{server_id}", response_model=ServerPayload)
async def patch_server(
    request: Request,
    server_id: UUID,
    body: ServerPatchIn,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    """Rename, describe, set the icon, the search language or the default notification
    level (MANAGE_SERVER). Upload the icon with
    POST /api/media and pass its URL. A change of nothing (no field, or each as it is)
    answers the server and is neither audited nor told."""
    fields = body.model_dump(exclude_unset=True)
    same = await unchanged.unchanged_server(conn, actor, server_id, fields)
    if same is not None:  # (nothing written, audited or told)
        return JSONResponse(same)
    return JSONResponse(
        await servers.update_server(
            conn,
            actor,
            server_id,
            fields=fields,
            reason=reason,
            # (each change indexes every message of the server again: a helper session's
            # find, one user's servers of long messages keeping the database busy)
            count_reindex=lambda c: check_limit(
                request, LANGUAGE_BUCKET, str(actor.user_id), LANGUAGE_CHANGES, c
            ),
        )
    )


@router.post("/api/servers/{server_id}/transfer", response_model=ServerPayload)
async def post_transfer(
    server_id: UUID, body: TransferIn, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """The owner hands the server to another member."""
    return JSONResponse(
        await servers.transfer_server(conn, actor, server_id, body.owner_id, reason)
    )


@router.delete("/api/servers/{server_id}", status_code=204, response_class=Response)
async def delete_server(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The owner deletes the server and everything in it."""
    await servers.delete_server(conn, actor, server_id)
    return Response(status_code=204)


@router.get("/api/servers/{server_id}/audit-log", response_model=list[AuditEntry])
async def get_audit_log(
    request: Request,
    server_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    user_id: UUID | None = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,  # (a bigint id)
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    """Newest first (VIEW_AUDIT_LOG); filter by the acting `user_id` and `action`; page
    with `before` (the last entry's id; the `Link` header does)."""
    page, next_before = await servers.list_audit_log(
        conn, actor, server_id, actor_id=user_id, action=action, before=before, limit=limit
    )
    more = next_before is not None
    return page_response(request, page, more, {"before": next_before} if more else {})
