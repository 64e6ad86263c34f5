"""Direct and group conversations and their participants (their messages, read states
and typing are channel routes: api/messages.py, api/channels.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import Conn, CurrentActor
from xfchat.api.models import Text
from xfchat.db.queries.conversations import ConversationListRow
from xfchat.domain import conversations
from xfchat.errors import BadRequest

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


class ConversationIn(BaseModel):
    """{"kind": "direct", "user_id": ...} or {"kind": "group", "participant_ids": [...], "name"?}"""

    kind: Literal["direct", "group"]
    user_id: UUID | None = None
    participant_ids: list[UUID] = Field(default_factory=list, max_length=100)
    name: Text | None = Field(default=None, max_length=1024)


class RenameIn(BaseModel):
    name: Text | None = Field(max_length=1024)


class ConversationOut(BaseModel):
    id: UUID
    kind: str
    name: str | None
    owner_id: UUID | None
    participant_ids: list[UUID]
    created_at: datetime
    last_read_seq: int | None = None
    unread: int | None = None
    last_message: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, c: conversations.Conversation | ConversationListRow, **extra: Any
    ) -> ConversationOut:
        ch = c.channel
        return cls(
            id=ch.id,
            kind=ch.kind,
            name=ch.name,
            owner_id=ch.owner_id,
            participant_ids=c.participant_ids,
            created_at=ch.created_at,
            **extra,
        )


@router.post("", status_code=201)
async def post_conversation(
    body: ConversationIn, actor: CurrentActor, conn: Conn, response: Response
) -> ConversationOut:
    """Open a direct conversation (200 if it already existed) or start a group."""
    if body.kind == "direct":
        if body.user_id is None:
            raise BadRequest(
                "a direct conversation needs user_id", code="VALIDATION_ERROR", field="user_id"
            )
        conversation, created = await conversations.open_direct(conn, actor, body.user_id)
        if not created:
            response.status_code = 200
        return ConversationOut.of(conversation)
    return ConversationOut.of(
        await conversations.create_group(
            conn, actor, name=body.name, participant_ids=body.participant_ids
        )
    )


@router.get("")
async def get_conversations(actor: CurrentActor, conn: Conn) -> list[ConversationOut]:
    """Mine, most recently active first, with unread counts (up to 100) and last message."""
    rows = await conversations.list_conversations(conn, actor)
    return [
        ConversationOut.of(
            r, last_read_seq=r.last_read_seq, unread=r.unread, last_message=r.last_message
        )
        for r in rows
    ]


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: UUID, actor: CurrentActor, conn: Conn
) -> ConversationOut:
    return ConversationOut.of(await conversations.get_conversation(conn, actor, conversation_id))


@router.patch("/{conversation_id}")
async def patch_conversation(
    conversation_id: UUID, body: RenameIn, actor: CurrentActor, conn: Conn
) -> ConversationOut:
    return ConversationOut.of(
        await conversations.rename_conversation(conn, actor, conversation_id, body.name)
    )


@router.put("/{conversation_id}/participants/{user_id}")
async def put_participant(
    conversation_id: UUID, user_id: UUID, actor: CurrentActor, conn: Conn
) -> ConversationOut:
    """The owner adds someone to a group."""
    return ConversationOut.of(
        await conversations.add_participant(conn, actor, conversation_id, user_id)
    )


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
