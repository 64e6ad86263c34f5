"""Reading and changing messages of a conversation (sending is in messages_send.py).

Messages are numbered per channel (`seq`, gap-free). A deleted message stays as a
tombstone (its number, author and times) with its content, earlier versions and
reactions gone. Every change is an event on the channel's stream.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import conversations as conversations_q
from xfchat.db.queries import event_log as events_q
from xfchat.db.queries import messages as q
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import access_conversation
from xfchat.errors import BadRequest, Forbidden, Gone, NotFound
from xfchat.realtime.events import Event, Stream, emit, signal_ephemeral

MAX_CONTENT = 4000
MAX_PAGE = 100
MENTION_RE = re.compile(r"<@([0-9a-fA-F-]{36})>")
TYPING_EXPIRES_S = 10


def author_json(
    author_id: UUID | None, username: str | None, display_name: str | None, avatar_url: str | None
) -> dict[str, Any] | None:
    if author_id is None:
        return None
    return {
        "id": str(author_id),
        "username": username,
        "display_name": display_name,
        "avatar_url": avatar_url,
    }


def message_json(
    row: q.MessageRow, author: dict[str, Any] | None, reactions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    deleted = row.deleted_at is not None
    return {
        "id": str(row.id),
        "channel_id": str(row.channel_id),
        "seq": row.seq,
        "author": author,
        "content": row.content,
        "created_at": row.created_at.isoformat(),
        "edited_at": row.edited_at.isoformat() if row.edited_at else None,
        "deleted": deleted,
        "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None,
        "reply_to_id": str(row.reply_to_id) if row.reply_to_id else None,
        "mentions": [str(m) for m in row.mentions],
        "nonce": row.nonce,
        "reactions": reactions or [],
    }


def view_json(row: q.MessageViewRow) -> dict[str, Any]:
    author = author_json(
        row.author_id, row.author_username, row.author_display_name, row.author_avatar_url
    )
    return message_json(row, author, row.reactions)


def check_content(content: str) -> str:
    """Raises BadRequest: EMPTY_MESSAGE, MESSAGE_TOO_LONG."""
    if not content.strip():
        raise BadRequest("a message needs some text", code="EMPTY_MESSAGE", field="content")
    if len(content) > MAX_CONTENT:
        raise BadRequest(
            f"a message is at most {MAX_CONTENT} characters (this one has {len(content)})",
            code="MESSAGE_TOO_LONG",
            field="content",
        )
    return content


def mentioned_ids(content: str) -> list[UUID]:
    found: list[UUID] = []
    for text in MENTION_RE.findall(content):
        try:
            uid = UUID(text)
        except ValueError:
            continue
        if uid not in found:
            found.append(uid)
    return found


def message_not_found() -> NotFound:
    return NotFound("no such message", code="MESSAGE_NOT_FOUND")


async def list_messages(
    conn: asyncpg.Connection,
    actor: Actor,
    conversation_id: UUID,
    *,
    limit: int,
    before: int | None,
    after: int | None,
) -> list[dict[str, Any]]:
    """A page of history: newest first (no cursor, or `before` a seq), oldest first
    (`after` a seq).

    Raises: NotFound (CONVERSATION_NOT_FOUND); BadRequest (INVALID_PAGE)."""
    if before is not None and after is not None:
        raise BadRequest("give before or after, not both", code="INVALID_PAGE")
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is 1 to {MAX_PAGE}", code="INVALID_PAGE", field="limit")
    channel = await access_conversation(conn, actor, conversation_id)
    rows = await q.list_messages(
        conn, viewer=actor.user_id, channel_id=channel.id, limit=limit, before=before, after=after
    )
    return [view_json(r) for r in rows]


async def get_message(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, message_id: UUID
) -> dict[str, Any]:
    channel = await access_conversation(conn, actor, conversation_id)
    row = await q.get_message_view(
        conn, viewer=actor.user_id, channel_id=channel.id, message_id=message_id
    )
    if row is None:
        raise message_not_found()
    return view_json(row)


async def _live_message(
    conn: asyncpg.Connection, channel_id: UUID, message_id: UUID
) -> q.MessageRow:
    row = await q.get_message_for_update(conn, channel_id=channel_id, message_id=message_id)
    if row is None or row.deleted_at is not None:
        raise message_not_found()
    return row


async def edit_message(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, message_id: UUID, content: str
) -> dict[str, Any]:
    """The author replaces the text; the earlier version is kept and readable.

    Raises: NotFound (CONVERSATION_NOT_FOUND, MESSAGE_NOT_FOUND); Forbidden
    (NOT_MESSAGE_AUTHOR); BadRequest (EMPTY_MESSAGE, MESSAGE_TOO_LONG)."""
    check_content(content)
    async with conn.transaction():
        channel = await access_conversation(conn, actor, conversation_id)
        row = await _live_message(conn, channel.id, message_id)
        if row.author_id != actor.user_id:
            raise Forbidden("only the author edits a message", code="NOT_MESSAGE_AUTHOR")
        changed = row.content != content
        if changed:
            mentions = await _participants_among(conn, channel.id, mentioned_ids(content))
            await q.update_message_content(
                conn, message_id=message_id, content=content, mentions=mentions
            )
        view = await q.get_message_view(
            conn, viewer=actor.user_id, channel_id=channel.id, message_id=message_id
        )
        assert view is not None
        body = view_json(view)
        if changed:
            await emit(conn, Event("message.updated", Stream.channel(channel.id), _shared(body)))
        return body


def _shared(body: dict[str, Any]) -> dict[str, Any]:
    """A message as broadcast to everyone: reaction counts without the viewer's `me`."""
    return {
        **body,
        "reactions": [{"emoji": r["emoji"], "count": r["count"]} for r in body["reactions"]],
    }


async def _participants_among(
    conn: asyncpg.Connection, channel_id: UUID, users: list[UUID]
) -> list[UUID]:
    if not users:
        return []
    present = set(await conversations_q.list_participant_ids(conn, channel_id=channel_id))
    return [u for u in users if u in present]


async def list_edits(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, message_id: UUID
) -> list[q.EditRow]:
    """Every earlier version of a message, oldest first (none once it is deleted)."""
    channel = await access_conversation(conn, actor, conversation_id)
    if await q.get_message_seq(conn, channel_id=channel.id, message_id=message_id) is None:
        raise message_not_found()
    return await q.list_edits(conn, message_id=message_id)


async def delete_message(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, message_id: UUID
) -> None:
    """The author deletes a message: its content and earlier versions are gone; a
    tombstone keeps its place. Deleting it again changes nothing.

    Raises: NotFound (CONVERSATION_NOT_FOUND, MESSAGE_NOT_FOUND); Forbidden
    (NOT_MESSAGE_AUTHOR)."""
    async with conn.transaction():
        channel = await access_conversation(conn, actor, conversation_id)
        row = await q.get_message_for_update(conn, channel_id=channel.id, message_id=message_id)
        if row is None:
            raise message_not_found()
        if row.author_id != actor.user_id:
            raise Forbidden("only the author deletes a message", code="NOT_MESSAGE_AUTHOR")
        if row.deleted_at is not None:
            return
        await q.soft_delete_message(conn, message_id=message_id, deleted_by=actor.user_id)
        # The text also leaves the event log, so a resume cannot replay it.
        await events_q.scrub_message_events(conn, channel_id=channel.id, message_id=message_id)
        await emit(
            conn,
            Event(
                "message.deleted",
                Stream.channel(channel.id),
                {"id": str(message_id), "channel_id": str(channel.id), "seq": row.seq},
            ),
        )


def check_emoji(emoji: str) -> str:
    try:
        emoji.encode("utf-8")
    except UnicodeEncodeError:
        emoji = ""
    if not 1 <= len(emoji) <= 64 or any(c.isspace() or ord(c) < 32 for c in emoji):
        raise BadRequest(
            "an emoji is 1 to 64 characters without spaces", code="INVALID_EMOJI", field="emoji"
        )
    return emoji


async def react(
    conn: asyncpg.Connection,
    actor: Actor,
    conversation_id: UUID,
    message_id: UUID,
    emoji: str,
    *,
    add: bool,
) -> None:
    """Add (or remove) the actor's reaction; doing it twice changes nothing."""
    check_emoji(emoji)
    async with conn.transaction():
        channel = await access_conversation(conn, actor, conversation_id)
        await _live_message(conn, channel.id, message_id)
        change = q.insert_reaction if add else q.delete_reaction
        if await change(conn, message_id=message_id, user_id=actor.user_id, emoji=emoji):
            await emit(
                conn,
                Event(
                    "reaction.added" if add else "reaction.removed",
                    Stream.channel(channel.id),
                    {
                        "message_id": str(message_id),
                        "channel_id": str(channel.id),
                        "user_id": str(actor.user_id),
                        "emoji": emoji,
                    },
                ),
            )


async def acknowledge(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, seq: int
) -> q.ReadStateRow:
    """Record that the actor has read up to `seq` (lower values mark messages unread
    again); the other participants see it as a read receipt.

    Raises: BadRequest (INVALID_SEQ)."""
    async with conn.transaction():
        channel = await access_conversation(conn, actor, conversation_id)
        last = await q.get_last_seq(conn, channel_id=channel.id)
        if not 0 <= seq <= last:
            raise BadRequest(f"seq must be between 0 and {last}", code="INVALID_SEQ", field="seq")
        state = await q.upsert_read_state(
            conn, user_id=actor.user_id, channel_id=channel.id, seq=seq
        )
        await emit(
            conn,
            Event(
                "read_state.updated",
                Stream.channel(channel.id),
                {
                    "channel_id": str(channel.id),
                    "user_id": str(actor.user_id),
                    "last_read_seq": seq,
                },
            ),
        )
        return state


async def read_states(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID
) -> list[q.ReadStateRow]:
    """Who has read up to where (read receipts), for participants."""
    channel = await access_conversation(conn, actor, conversation_id)
    return await q.list_read_states(conn, channel_id=channel.id)


async def start_typing(conn: asyncpg.Connection, actor: Actor, conversation_id: UUID) -> None:
    """Tell the others the actor is typing. Not stored, not resumable: it expires."""
    channel = await access_conversation(conn, actor, conversation_id)
    await signal_ephemeral(
        conn,
        Event(
            "typing.started",
            Stream.channel(channel.id),
            {
                "channel_id": str(channel.id),
                "user_id": str(actor.user_id),
                "expires_in": TYPING_EXPIRES_S,
            },
        ),
    )


async def resume_point(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, versions: list[str]
) -> tuple[int, str]:
    """(seq, id) of the newest of these message ids (Braid versions) in the conversation.

    Raises: NotFound (CONVERSATION_NOT_FOUND); Gone (VERSION_UNKNOWN) if one is not a
    message of this conversation."""
    channel = await access_conversation(conn, actor, conversation_id)
    best: tuple[int, str] | None = None
    for version in versions:
        try:
            message_id: UUID | None = UUID(version)
        except ValueError:
            message_id = None
        seq = (
            None
            if message_id is None
            else await q.get_message_seq(conn, channel_id=channel.id, message_id=message_id)
        )
        if seq is None:
            raise Gone(
                f"version {version!r} is not a message of this conversation; "
                "subscribe without Parents",
                code="VERSION_UNKNOWN",
            )
        if best is None or seq > best[0]:
            best = (seq, version)
    assert best is not None
    return best
