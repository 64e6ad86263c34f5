"""Incoming webhooks: managing them (MANAGE_WEBHOOKS) and executing one with its token,
without an account (README, "Webhooks")."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from fastapi import Request, Response
from pydantic import BaseModel, Field

from xfchat.api import braid
from xfchat.api.deps import Conn, CurrentActor, ip_limit, record_decision
from xfchat.api.messages import CONTENT
from xfchat.api.models import Text, enforced, omittable
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import webhooks, webhooks_execute
from xfchat.domain.event_payloads import MessagePayload
from xfchat.domain.webhooks import MAX_NAME, webhook_not_found

router = api_router(tags=["webhooks"])
MAX_TOKEN = 128  # (a token is 43 characters; anything longer is no token of ours)


class WebhookOut(BaseModel):
    id: UUID
    server_id: UUID
    channel_id: UUID
    name: str
    avatar_url: str | None
    created_by: UUID | None
    created_at: str


class WebhookTokenOut(WebhookOut):
    """The token, and the URL to POST to, are shown in this answer only."""

    token: str
    url: str


class WebhookIn(BaseModel):
    name: Text = Field(max_length=1024, json_schema_extra=enforced(MAX_NAME, 1))
    avatar_url: Text | None = Field(default=None, max_length=4096)


class WebhookPatch(BaseModel):
    """Only the fields present change; avatar_url null clears it; channel_id moves it
    (MANAGE_WEBHOOKS in both channels, of the same server)."""

    name: Text | None = Field(
        default=None, max_length=1024, json_schema_extra=enforced(MAX_NAME, 1)
    )
    avatar_url: Text | None = Field(default=None, max_length=4096)
    channel_id: UUID | None = Field(default=None, json_schema_extra=omittable)


class WebhookMessageIn(BaseModel):
    content: Text = Field(max_length=100_000, json_schema_extra=CONTENT)
    username: Text | None = Field(
        default=None, max_length=1024, json_schema_extra=enforced(MAX_NAME, 1)
    )
    avatar_url: Text | None = Field(default=None, max_length=4096)


def _with_token(request: Request, made: webhooks.WebhookWithToken) -> dict[str, Any]:
    url = f"{str(request.base_url).rstrip('/')}/api/webhooks/{made.webhook['id']}/{made.token}"
    return {**made.webhook, "token": made.token, "url": url}


@router.post("/api/channels/{channel_id}/webhooks", status_code=201, response_model=WebhookTokenOut)
async def post_webhook(
    request: Request, channel_id: UUID, body: WebhookIn, actor: CurrentActor, conn: Conn
) -> Response:
    """Make a webhook in a server text channel (MANAGE_WEBHOOKS there; at most 15 per
    channel, 1,000 per server). Its token and URL are in this answer only."""
    made = await webhooks.create_webhook(conn, actor, channel_id, body.name, body.avatar_url)
    return JSONResponse(_with_token(request, made), status_code=201)


@router.get("/api/channels/{channel_id}/webhooks", response_model=list[WebhookOut])
async def get_channel_webhooks(channel_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The channel's webhooks (MANAGE_WEBHOOKS there), oldest first, without tokens."""
    return JSONResponse(await webhooks.list_channel_webhooks(conn, actor, channel_id))


@router.get("/api/servers/{server_id}/webhooks", response_model=list[WebhookOut])
async def get_server_webhooks(server_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """The webhooks of the server's channels you manage webhooks in."""
    return JSONResponse(await webhooks.list_server_webhooks(conn, actor, server_id))


@router.patch("/api/webhooks/{webhook_id}", response_model=WebhookOut)
async def patch_webhook(
    webhook_id: UUID, body: WebhookPatch, actor: CurrentActor, conn: Conn
) -> Response:
    """Rename it, change or clear its avatar, or move it to another text channel."""
    values = body.model_dump(exclude_unset=True)
    return JSONResponse(await webhooks.update_webhook(conn, actor, webhook_id, values))


@router.delete("/api/webhooks/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Delete it; the messages it posted stay, with their name and avatar."""
    await webhooks.delete_webhook(conn, actor, webhook_id)
    return Response(status_code=204)


@router.post("/api/webhooks/{webhook_id}/token", response_model=WebhookTokenOut)
async def post_webhook_token(
    request: Request, webhook_id: UUID, actor: CurrentActor, conn: Conn
) -> Response:
    """A new token (shown this once); the old one stops working at once."""
    made = await webhooks.regenerate_token(conn, actor, webhook_id)
    return JSONResponse(_with_token(request, made))


@router.post(
    "/api/webhooks/{webhook_id}/{token}",
    status_code=201,
    response_model=MessagePayload,
    responses={204: {"description": "wait=false: posted (committed), no body"}},
    dependencies=[ip_limit("webhooks.execute.ip", "rate_webhook_ip")],
    openapi_extra={"security": []},
)
async def post_webhook_message(
    request: Request, webhook_id: str, token: str, body: WebhookMessageIn, wait: bool = True
) -> Response:
    """Post a message as the webhook, with no Authorization: its token is the secret.
    A wrong id and a wrong token are the same 404 WEBHOOK_NOT_FOUND. Answered after
    commit: 201 with the message, or 204 with `wait=false`. Counted per webhook
    (XFCHAT_RATE_WEBHOOK) and per client address (XFCHAT_RATE_WEBHOOK_IP)."""
    try:
        webhook = UUID(webhook_id)
    except ValueError:
        raise webhook_not_found() from None
    if len(token) > MAX_TOKEN:
        raise webhook_not_found()
    state = request.app.state
    settings = state.settings
    result = await state.writer.write_beside(
        None,
        lambda: webhooks_execute.execute_webhook(
            state.pool,
            webhook,
            token,
            content=body.content,
            username=body.username,
            avatar_url=body.avatar_url,
            limits=[("webhooks.execute", str(webhook), settings.rate_webhook)],
        ),
    )
    for decision in result.decisions:
        record_decision(request, decision)
    if not wait:
        return Response(status_code=204)
    return Response(
        orjson.dumps(result.message),
        status_code=201,
        media_type="application/json",
        headers={"Version": braid.quoted(result.message["id"])},
    )
