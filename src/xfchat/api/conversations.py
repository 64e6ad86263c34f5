"""Direct and group conversations and their participants (their messages, read states
and typing are channel routes: api/messages.py, api/channels.py)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import AppSettings, Conn, CurrentActor, check_limit, counted_actor
from xfchat.api.models import Text, enforced
from xfchat.api.pages import page_of
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import conversations
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import ConversationView
from xfchat.errors import BadRequest

router = api_router(prefix="/api/conversations", tags=["conversations"])
# Starting a group, renaming one and adding someone write the group with every
# participant's profile to the event log (a start once per participant): counted in
# `groups` per user (XFCHAT_RATE_GROUPS_USER).
GroupChangingActor = Annotated[Actor, Depends(counted_actor("groups"))]


NAME = enforced(conversations.MAX_NAME)


class ConversationIn(BaseModel):
    """{"kind": "direct", "user_id": ...} or {"kind": "group", "participant_ids": [...], "name"?}"""

    kind: Literal["direct", "group"]
    user_id: UUID | None = None
    participant_ids: list[UUID] = Field(default_factory=list, max_length=100)
    name: Text | None = Field(default=None, max_length=1024, json_schema_extra=NAME)


class RenameIn(BaseModel):
    name: Text | None = Field(max_length=1024, json_schema_extra=NAME)


async def _view(
    conn: Conn, actor: CurrentActor, conversation_id: UUID, status: int = 200
) -> Response:
    view = await conversations.get_conversation(conn, actor, conversation_id)
    return JSONResponse(view, status_code=status)


@router.post(
    "",
    status_code=201,
    response_model=ConversationView,
    responses={
        200: {"model": ConversationView, "description": "The direct conversation already existed"}
    },
)
async def post_conversation(
    body: ConversationIn,
    actor: CurrentActor,
    conn: Conn,
    settings: AppSettings,
    request: Request,
) -> Response:
    """Open a direct conversation (200 if it already existed) or start a group (counted
    in `groups`, XFCHAT_RATE_GROUPS_USER, refused ones included)."""
    if body.kind == "direct":
        if body.user_id is None:
            raise BadRequest(
                "a direct conversation needs user_id", code="VALIDATION_ERROR", field="user_id"
            )
        conversation, created = await conversations.open_direct(conn, actor, body.user_id)
        return await _view(conn, actor, conversation.channel.id, 201 if created else 200)
    await check_limit(request, "groups", str(actor.user_id), settings.rate_groups_user, conn)
    conversation = await conversations.create_group(
        conn, actor, name=body.name, participant_ids=body.participant_ids
    )
    return await _view(conn, actor, conversation.channel.id, 201)


@router.get("", response_model=list[ConversationView])
async def get_conversations(
    request: Request,
    actor: CurrentActor,
    conn: Conn,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=conversations.MAX_PAGE)] = 50,
) -> Response:
    """Mine, a page at a time by id (stable while new messages come; sort by
    `last_message` to show them), each with its participants' public profiles, my read
    position, unread (up to 100) and mention counts, and its last message. Pass the last
    one's id as `after` (the `Link` header does)."""
    page = await conversations.list_conversations(conn, actor, after=after, limit=limit + 1)
    return page_of(request, page, limit, lambda last: {"after": last["id"]})


@router.get("/{conversation_id}", response_model=ConversationView)
async def get_conversation(conversation_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """One conversation, with the same fields as in the list."""
    return await _view(conn, actor, conversation_id)


@router.patch("/{conversation_id}", response_model=ConversationView)
async def patch_conversation(
    conversation_id: UUID, body: RenameIn, actor: GroupChangingActor, conn: Conn
) -> Response:
    """Any participant renames a group (counted in `groups`); a rename to the name it
    has tells no one."""
    await conversations.rename_conversation(conn, actor, conversation_id, body.name)
    return await _view(conn, actor, conversation_id)


@router.put("/{conversation_id}/participants/{user_id}", response_model=ConversationView)
async def put_participant(
    conversation_id: UUID, user_id: UUID, actor: GroupChangingActor, conn: Conn
) -> Response:
    """The owner adds someone to a group (counted in `groups`)."""
    await conversations.add_participant(conn, actor, conversation_id, user_id)
    return await _view(conn, actor, conversation_id)


@router.delete(
    "/{conversation_id}/participants/{user_id}", status_code=204, response_class=Response
)
async def delete_participant(
    conversation_id: UUID, user_id: str, actor: CurrentActor, conn: Conn
) -> Response:
    """The owner removes someone; `@me` (or your own id) leaves."""
    try:
        target = actor.user_id if user_id == "@me" else UUID(user_id)
    except ValueError:
        raise BadRequest(
            "user_id is a user id or @me", code="VALIDATION_ERROR", field="user_id"
        ) from None
    await conversations.remove_participant(conn, actor, conversation_id, target)
    return Response(status_code=204)
