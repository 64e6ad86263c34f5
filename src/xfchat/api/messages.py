"""Messages of a channel of any kind (a server's text channel, a direct or group
conversation): history (or a Braid-HTTP subscription), sending (PUT with the client's
id, or POST with an optional nonce), edits, deletion, reactions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.convertors import Convertor, register_url_convertor

from xfchat.api import braid
from xfchat.api.deps import (
    Conn,
    CurrentActor,
    authenticate_request,
    bearer_token,
    counted_actor,
    identify,
    record_decision,
)
from xfchat.api.errors import declared_not_json, not_json
from xfchat.api.media import image_slots
from xfchat.api.models import Instant, Text, enforced
from xfchat.api.pages import cursor_time, page_headers, page_link, page_response
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.api.uploads import is_multipart, read_form, whole_body
from xfchat.domain import messages, messages_upload
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import AuthorPayload, MessagePayload, PublicUserPayload
from xfchat.domain.messages_batch import SendRequest, SendResult
from xfchat.domain.profile import public_profile
from xfchat.errors import BadRequest

router = api_router(prefix="/api/channels/{channel_id}/messages", tags=["messages"])


CONTENT = enforced(messages.MAX_CONTENT, 1)


class MessageIn(BaseModel):
    """`content` (braid-http clients may say `text`), optional `reply_to_id` and `nonce`."""

    content: Text | None = Field(default=None, max_length=100_000, json_schema_extra=CONTENT)
    text: Text | None = Field(default=None, max_length=100_000, json_schema_extra=CONTENT)
    reply_to_id: UUID | None = None
    nonce: Text | None = Field(default=None, max_length=1024, json_schema_extra=enforced(64, 1))

    @model_validator(mode="after")
    def _has_text(self) -> MessageIn:
        if self.content is None and self.text is None:
            raise ValueError("give content")
        return self

    @property
    def body(self) -> str:
        return self.content if self.content is not None else (self.text or "")


class EditIn(BaseModel):
    content: Text = Field(max_length=100_000, json_schema_extra=CONTENT)


class EditOut(BaseModel):
    content: str
    written_at: Instant
    replaced_at: Instant


def author_of(request: Request, actor: Actor) -> AuthorPayload:
    user = request.state.user
    author = messages.author_json(
        actor.user_id, user.username, user.display_name, user.avatar_url, False
    )  # (a deleted account sends nothing)
    assert author is not None
    return author


async def _send(
    request: Request, channel_id: UUID, *, message_id: UUID, client_chose_id: bool
) -> Response:
    """The hot path, kept lean: no dependency injection, the body validated by the same
    model as documented, the rate limits counted by the writer in its transaction. A
    multipart body is a send with files (_send_with_files)."""
    if is_multipart(request):
        return await _send_with_files(
            request, channel_id, message_id=message_id, client_chose_id=client_chose_id
        )
    actor = await identify(request)
    if declared_not_json(request):
        raise not_json()
    body = _message_in(await whole_body(request))
    state = request.app.state
    settings = state.settings
    send = _request(request, actor, channel_id, body, message_id, client_chose_id)
    send.limits.insert(0, ("api", str(actor.user_id), settings.rate_api_user))
    result = await state.writer.send(send)
    return _sent(request, result)


def _message_in(raw: bytes) -> MessageIn:
    try:
        return MessageIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _request(
    request: Request,
    actor: Actor,
    channel_id: UUID,
    body: MessageIn,
    message_id: UUID,
    client_chose_id: bool,
) -> SendRequest:
    rule = request.app.state.settings.rate_messages_user
    return SendRequest(
        actor=actor,
        author=author_of(request, actor),
        channel_id=channel_id,
        message_id=message_id,
        content=body.body,
        client_chose_id=client_chose_id,
        nonce=body.nonce,
        reply_to_id=body.reply_to_id,
        limits=[("messages.send", f"{actor.user_id}:{channel_id}", rule)],
    )


async def _send_with_files(
    request: Request, channel_id: UUID, *, message_id: UUID, client_chose_id: bool
) -> Response:
    """Counted in the API and attachments limits, and refused (403/404) before a byte of
    the body is read when the sender may not attach files there."""
    state = request.app.state
    settings = state.settings
    rule = settings.rate_attachments_user
    actor = await authenticate_request(
        request,
        bearer_token(request.headers.get("authorization")),
        lambda actor: [("attachments", str(actor.user_id), rule)],
    )
    async with state.pool.acquire() as conn:
        await messages_upload.check_attach(conn, actor, channel_id)
    writer = state.writer
    async with (
        writer.sending_files(actor.user_id),  # (before the body is read)
        read_form(request, max_bytes=settings.attachment_max_bytes) as form,
    ):
        send = _request(
            request, actor, channel_id, _message_in(form.payload), message_id, client_chose_id
        )
        result = await writer.write_beside(
            actor.user_id,
            lambda: messages_upload.send_with_files(
                state.pool,
                send,
                form.uploads,
                max_bytes=settings.attachment_max_bytes,
                quota=settings.upload_quota_bytes,
                slots=image_slots(request, actor),
                storing=writer.storing,
            ),
        )
    return _sent(request, result)


def _sent(request: Request, result: SendResult) -> Response:
    for decision in result.decisions:
        record_decision(request, decision)
    return Response(
        orjson.dumps(result.message),
        status_code=201 if result.created else 200,
        media_type="application/json",
        headers={"Version": braid.quoted(result.message["id"])},
    )


FILES_FORM = {
    "type": "object",
    "description": "A message with up to 10 files: the message as JSON in payload_json (or "
    "plain content, nonce and reply_to_id fields), and file parts of any name.",
    "properties": {
        "payload_json": {"type": "string", "contentMediaType": "application/json"},
        "content": {"type": "string", "maxLength": messages.MAX_CONTENT},
        "nonce": {"type": "string", "minLength": 1, "maxLength": 64},
        "reply_to_id": {"type": "string", "format": "uuid"},
        "files": {"type": "array", "maxItems": 10, "items": {"type": "string", "format": "binary"}},
    },
}
SEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": MessageIn.model_json_schema()},
            "multipart/form-data": {"schema": FILES_FORM},
        },
    },
    "security": [{"bearer": []}],
}
REPEAT: dict[int | str, dict[str, Any]] = {
    200: {"model": MessagePayload, "description": "A repeat: the message already stored"}
}


@router.get(
    "",
    response_model=list[MessagePayload],
    responses=braid.SUBSCRIPTION_RESPONSE,
    openapi_extra=braid.SUBSCRIPTION_HEADERS,
)
async def get_messages(
    request: Request,
    channel_id: UUID,
    actor: CurrentActor,
    before: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    around: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    """History: newest first (no cursor or `before=<seq>`), oldest first (`after=<seq>`),
    or newest first centred on a message (`around=<seq>`). With a `Subscribe` header: a
    Braid-HTTP subscription (209, see the README)."""
    if "subscribe" in request.headers:
        return await braid.subscribe(request, actor, channel_id)
    if around is not None:
        if before is not None or after is not None:
            raise BadRequest("give one of before, after and around", code="INVALID_PAGE")
        return await _history_around(request, actor, channel_id, around, limit)
    # Older history (`before=`) may come from the replica; the newest page and `after=`
    # (catching up) read the primary.
    state = request.app.state
    reading = state.reads.reading() if before is not None else state.pool.acquire()
    async with reading as conn:
        page, more = await messages.list_messages(
            conn, actor, channel_id, limit=limit, before=before, after=after
        )
    direction = "after" if after is not None else "before"
    headers = page_headers(request, more, {direction: page[-1]["seq"]} if page else {})
    if page:
        headers["Version"] = braid.quoted(max(page, key=lambda m: m["seq"])["id"])
    return Response(orjson.dumps(page), media_type="application/json", headers=headers)


async def _history_around(
    request: Request, actor: Actor, channel_id: UUID, around: int, limit: int
) -> Response:
    """A page centred on `around`: `X-Has-More` and `Link; rel="next"` as the newest-first
    pages (older, `before=`); `Link; rel="prev"` (newer, `after=`) when newer follow."""
    async with request.app.state.pool.acquire() as conn:
        page, older, newer = await messages.list_messages_around(
            conn, actor, channel_id, around=around, limit=limit
        )
    headers = {"X-Has-More": "true" if older else "false"}
    links = [
        page_link(request, cursor, rel, drop=("around",))
        for wanted, cursor, rel in (
            (older, {"before": page[-1]["seq"] if page else around + 1}, "next"),
            (newer, {"after": page[0]["seq"] if page else around}, "prev"),
        )
        if wanted
    ]
    if links:
        headers["Link"] = ", ".join(links)
    if page:
        headers["Version"] = braid.quoted(page[0]["id"])
    return Response(orjson.dumps(page), media_type="application/json", headers=headers)


@router.post(
    "", status_code=201, response_model=MessagePayload, responses=REPEAT, openapi_extra=SEND_BODY
)
async def post_message(request: Request, channel_id: UUID) -> Response:
    """Send; with a `nonce`, sending again returns the stored message (200)."""
    return await _send(request, channel_id, message_id=uuid.uuid4(), client_chose_id=False)


@router.put(
    "/{message_id}",
    status_code=201,
    response_model=MessagePayload,
    responses=REPEAT,
    openapi_extra=SEND_BODY,
)
async def put_message(request: Request, channel_id: UUID, message_id: UUID) -> Response:
    """Send with your own message id: the same id and body again returns the stored
    message (200) and broadcasts nothing; the same id with another body is 409."""
    return await _send(request, channel_id, message_id=message_id, client_chose_id=True)


class HyphenatedUUID(Convertor[UUID]):
    """A UUID as 8-4-4-4-12 hex digits, each hyphen in place (Starlette's `uuid` makes
    them optional, which pydantic, and so the documented route, refuses)."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> UUID:
        return UUID(value)

    def to_string(self, value: UUID) -> str:
        return str(value)


register_url_convertor("hyphenated_uuid", HyphenatedUUID())


def documented_put_route() -> APIRoute:
    """put_message's route, as the OpenAPI document and the metrics name it."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is put_message)


async def put_from_path(request: Request) -> Response:
    """put_message, its ids taken from the path parameters already converted."""
    params = request.path_params
    return await _send(
        request, params["channel_id"], message_id=params["message_id"], client_chose_id=True
    )


class BulkDeleteIn(BaseModel):
    # (The count is the domain's to judge, INVALID_BULK_DELETE; this only bounds parsing.)
    messages: list[UUID] = Field(max_length=10 * messages.MAX_BULK_DELETE)


class BulkDeleteOut(BaseModel):
    deleted: list[str]


@router.post("/bulk-delete", response_model=BulkDeleteOut)
async def post_bulk_delete(
    channel_id: UUID, body: BulkDeleteIn, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """Delete up to 100 messages of a server channel at once (MANAGE_MESSAGES), in one
    transaction and one audit entry; ids that are not live messages here are skipped.
    Each deleted message is a `message.deleted` event."""
    deleted = await messages.bulk_delete(conn, actor, channel_id, body.messages, reason)
    return JSONResponse({"deleted": deleted})


@router.get("/{message_id}", response_model=MessagePayload)
async def get_message(
    channel_id: UUID, message_id: UUID, actor: CurrentActor, conn: Conn
) -> Response:
    return JSONResponse(await messages.get_message(conn, actor, channel_id, message_id))


EditingActor = Annotated[Actor, Depends(counted_actor("edits"))]


@router.patch("/{message_id}", response_model=MessagePayload)
async def patch_message(
    channel_id: UUID,
    message_id: UUID,
    body: EditIn,
    actor: EditingActor,
    conn: Conn,
) -> Response:
    """The author edits; the earlier versions (the 50 newest) stay readable at .../edits.
    Counted in `edits` per user (XFCHAT_RATE_EDITS_USER)."""
    return JSONResponse(
        await messages.edit_message(conn, actor, channel_id, message_id, body.content)
    )


@router.get("/{message_id}/edits")
async def get_edits(
    channel_id: UUID, message_id: UUID, actor: CurrentActor, conn: Conn
) -> list[EditOut]:
    return [
        EditOut(content=e.content, written_at=e.written_at, replaced_at=e.replaced_at)
        for e in await messages.list_edits(conn, actor, channel_id, message_id)
    ]


@router.delete("/{message_id}", status_code=204, response_class=Response)
async def delete_message(
    channel_id: UUID, message_id: UUID, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """The author deletes: content and earlier versions are gone, a tombstone stays.
    A moderator's deletion of someone else's message is audited (with
    X-Audit-Log-Reason)."""
    await messages.delete_message(conn, actor, channel_id, message_id, reason)
    return Response(status_code=204)


@router.get("/{message_id}/reactions/{emoji}", response_model=list[PublicUserPayload])
async def get_reactions(
    request: Request,
    channel_id: UUID,
    message_id: UUID,
    emoji: str,
    actor: CurrentActor,
    conn: Conn,
    after: UUID | None = None,
    after_at: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Response:
    """Who reacted with this emoji, in the order they did (public profiles);
    `after=<user id>` pages on (the `Link` adds `after_at`, that reaction's time, so the
    page goes on even if it is taken back meanwhile)."""
    after_at = cursor_time(after_at, "after_at")
    rows, more = await messages.list_reactors(
        conn, actor, channel_id, message_id, emoji, after_user=after, after_at=after_at, limit=limit
    )
    cursor = {"after": rows[-1][0].id, "after_at": rows[-1][1].isoformat()} if rows else {}
    return page_response(request, [public_profile(u) for u, _ in rows], more, cursor)


ReactingActor = Annotated[Actor, Depends(counted_actor("reactions"))]


@router.put("/{message_id}/reactions/{emoji}/@me", status_code=204, response_class=Response)
async def put_reaction(
    channel_id: UUID, message_id: UUID, emoji: str, actor: ReactingActor, conn: Conn
) -> Response:
    """Counted in `reactions` per user (XFCHAT_RATE_REACTIONS_USER)."""
    await messages.react(conn, actor, channel_id, message_id, emoji, add=True)
    return Response(status_code=204)


@router.delete("/{message_id}/reactions/{emoji}/@me", status_code=204, response_class=Response)
async def delete_reaction(
    channel_id: UUID, message_id: UUID, emoji: str, actor: ReactingActor, conn: Conn
) -> Response:
    """Counted in `reactions` per user (XFCHAT_RATE_REACTIONS_USER)."""
    await messages.react(conn, actor, channel_id, message_id, emoji, add=False)
    return Response(status_code=204)


@router.delete(
    "/{message_id}/reactions/{emoji}/{user_id}", status_code=204, response_class=Response
)
async def delete_user_reaction(
    channel_id: UUID,
    message_id: UUID,
    emoji: str,
    user_id: UUID,
    actor: ReactingActor,
    conn: Conn,
) -> Response:
    """A moderator removes someone's reaction (MANAGE_MESSAGES and
    READ_MESSAGE_HISTORY). Counted in `reactions` per user."""
    await messages.remove_reaction(conn, actor, channel_id, message_id, emoji, user_id)
    return Response(status_code=204)
