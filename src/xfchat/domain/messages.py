"""Reading and changing the messages of a channel, of any kind: a server's text
channel, a direct or group conversation (sending is in messages_send.py). Who may do
what is decided by the channel-access seam (domain/access.py).

Messages are numbered per channel (`seq`, gap-free). A deleted message stays as a
tombstone (its number, author and times) with its content, earlier versions and
reactions gone. Every change is an event on the channel's stream.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import attachments as attachments_q
from xfchat.db.queries import audit as audit_q
from xfchat.db.queries import event_log as events_q
from xfchat.db.queries import messages as q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q
from xfchat.db.queries import webhooks as webhooks_q
from xfchat.domain.access import (
    MESSAGE_KINDS,
    ChannelAccess,
    Need,
    access_channel,
    direct_refused,
    missing,
    timed_out,
    viewers_among,
)
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import (
    AttachmentPayload,
    AuthorPayload,
    MentionsPayload,
    MessagePayload,
    MessageUpdatedPayload,
    ReactionPayload,
    ReadStatePayload,
    ReplyPreviewPayload,
)
from xfchat.domain.events import (
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    REACTION_ADDED,
    REACTION_REMOVED,
    READ_STATE_UPDATED,
    TYPING_STARTED,
    Event,
    emit,
    emit_many,
    signal,
    signal_if_facts_hold,
)
from xfchat.domain.permissions import Permission
from xfchat.domain.validation import check_mark_runs, looks_empty, one_line
from xfchat.errors import BadRequest, Forbidden, Gone, NotFound

MAX_CONTENT = 4000
MAX_PAGE = 100
# A ban's deletion of the member's recent messages reads at most this many of theirs a
# message it may delete (their newest, wherever they wrote them), so that its
# transaction, which holds the server's row, stays short however much they wrote.
SCANNED_PER_DELETED = 10
# Only the 8-4-4-4-12 form every client reads (UUID() also takes dashes anywhere, or
# none: a ping that no client would show as a mention).
_UUID_TEXT = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
MENTION_RE = re.compile(rf"<@({_UUID_TEXT})>")
ROLE_MENTION_RE = re.compile(rf"<@&({_UUID_TEXT})>")
# @everyone or @here as a word of its own (not inside an address such as a@everyone.io).
EVERYONE_RE = re.compile(r"(?<![\w@.])@(?:everyone|here)(?![\w@])")
TYPING_EXPIRES_S = 10
MAX_PARENTS = 8  # Braid versions a resume may name (each is one lookup)


def author_json(
    author_id: UUID | None,
    username: str | None,
    display_name: str | None,
    avatar_url: str | None,
    deleted: bool,
) -> AuthorPayload | None:
    if author_id is None:
        return None
    return {
        "id": str(author_id),
        "username": username,
        "display_name": display_name,
        "avatar_url": avatar_url,
        "deleted": deleted,
    }


def webhook_author(webhook_id: UUID | None, name: str, avatar_url: str | None) -> AuthorPayload:
    """A webhook's message's author: the name and avatar it was posted with, as a bot,
    and the webhook's id, which the message keeps after the webhook is deleted (never
    `deleted`: no account is behind it). (None only for a row no webhook posted.)"""
    return {
        "id": str(webhook_id or UUID(int=0)),
        "username": name,
        "display_name": name,
        "avatar_url": avatar_url,
        "deleted": False,
        "bot": True,
    }


def message_json(
    row: q.MessageRow,
    author: AuthorPayload | None,
    reactions: list[ReactionPayload] | None = None,
    reply_to: ReplyPreviewPayload | None = None,
    attachments: list[AttachmentPayload] | None = None,
    webhook_id: UUID | None = None,
) -> MessagePayload:
    deleted = row.deleted_at is not None
    return {
        "id": str(row.id),
        "channel_id": str(row.channel_id),
        "seq": row.seq,
        "kind": row.kind,
        "author": author,
        "webhook_id": str(webhook_id) if webhook_id else None,
        "content": row.content,
        "created_at": row.created_at.isoformat(),
        "edited_at": row.edited_at.isoformat() if row.edited_at else None,
        "deleted": deleted,
        "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None,
        "reply_to_id": str(row.reply_to_id) if row.reply_to_id else None,
        "reply_to": reply_to,
        "mentions": [str(m) for m in row.mentions],
        "mention_roles": [str(r) for r in row.mention_roles],
        "mention_everyone": row.mention_everyone,
        # (a deleted message's row keeps its nonce, so that its author's retry of the
        # send is answered as the repeat it is; nobody is shown it: the sender chose it)
        "nonce": None if deleted else row.nonce,
        "pinned": row.pinned_at is not None,
        "reactions": reactions or [],
        "attachments": attachments or [],
    }


def view_json(row: q.MessageViewRow) -> MessagePayload:
    author = (
        webhook_author(row.webhook_id, row.webhook_name, row.webhook_avatar_url)
        if row.webhook_name is not None
        else author_json(
            row.author_id,
            row.author_username,
            row.author_display_name,
            row.author_avatar_url,
            row.author_deleted,
        )
    )
    return message_json(
        row,
        author,
        row.reactions,  # type: ignore[arg-type]
        row.reply_to,  # type: ignore[arg-type]
        row.attachments,  # type: ignore[arg-type]
        row.webhook_id,
    )


def check_content(content: str, *, files: bool = False) -> str:
    """Raises BadRequest: EMPTY_MESSAGE (also for text that shows nothing, as U+200B
    alone; unless the message carries `files`), MESSAGE_TOO_LONG,
    TOO_MANY_COMBINING_MARKS (validation.MAX_MARK_RUN)."""
    if looks_empty(content) and not files:
        raise BadRequest("a message needs some text", code="EMPTY_MESSAGE", field="content")
    if len(content) > MAX_CONTENT:
        raise BadRequest(
            f"a message is at most {MAX_CONTENT} characters (this one has {len(content)})",
            code="MESSAGE_TOO_LONG",
            field="content",
        )
    return check_mark_runs(content, field="content")


def mentioned_ids(content: str, pattern: re.Pattern[str] = MENTION_RE) -> list[UUID]:
    """The users (or, with ROLE_MENTION_RE, the roles) the text mentions, in order."""
    found: list[UUID] = []
    for text in pattern.findall(content):
        try:
            uid = UUID(text)
        except ValueError:
            continue
        if uid not in found:
            found.append(uid)
    return found


def mentioned_role_ids(content: str) -> list[UUID]:
    return mentioned_ids(content, ROLE_MENTION_RE)


def loud_mentions(
    content: str, permissions: Permission, mentionable: dict[UUID, bool]
) -> tuple[bool, list[UUID]]:
    """What a server channel message pings beyond single users: whether it mentions
    everyone (`@everyone` or `@here`, only with MENTION_EVERYONE), and the roles it
    mentions that exist in the server (`mentionable`: each such role's flag) and may be
    mentioned (mentionable ones, or any with MENTION_EVERYONE). Otherwise they stay
    plain text."""
    loud = bool(permissions & Permission.MENTION_EVERYONE)
    everyone = loud and EVERYONE_RE.search(content) is not None
    roles = [
        r for r in mentioned_role_ids(content) if r in mentionable and (loud or mentionable[r])
    ]
    return everyone, roles


def message_not_found() -> NotFound:
    return NotFound("no such message", code="MESSAGE_NOT_FOUND")


HISTORY = Permission.READ_MESSAGE_HISTORY


def history_needed() -> Forbidden:
    """The one answer to someone without READ_MESSAGE_HISTORY who names a message that
    is not their own (to reply, react, edit, delete): the same whether it exists or not,
    so it tells them nothing of the history they may not read."""
    return missing(
        HISTORY, Permission(0), "in this channel to reply to or act on a message not your own"
    )


def without_history(body: MessagePayload) -> MessagePayload:
    """A message as answered to its author when they may not read the channel's
    history: without the preview of the message it replies to (`reply_to` null; its
    `reply_to_id` stays), which would quote that message as it is now."""
    return body if body["reply_to"] is None else {**body, "reply_to": None}


def _own_or_readable(access: ChannelAccess, actor: Actor, row: q.MessageRow | None) -> bool:
    """Whether the actor may name this message (None: no such message here): anyone who
    may read the history may name any; someone who may not, only their own."""
    return access.can(HISTORY) or (row is not None and row.author_id == actor.user_id)


def not_a_text_channel() -> BadRequest:
    return BadRequest("this channel does not carry messages", code="NOT_A_TEXT_CHANNEL")


async def message_channel(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    need: Need = Permission.READ_MESSAGE_HISTORY,
    *,
    write: bool = False,
) -> ChannelAccess:
    """A channel that carries messages, where the actor has `need`; for a `write` (in
    the caller's transaction), judged under a share lock of the channel's row (see
    `access_channel`).

    Raises: NotFound (CHANNEL_NOT_FOUND), Forbidden (MISSING_PERMISSIONS,
    CANNOT_MESSAGE_USER), BadRequest (NOT_A_TEXT_CHANNEL)."""
    access = await access_channel(conn, actor, channel_id, need=need, share=write)
    if access.channel.kind not in MESSAGE_KINDS:
        raise not_a_text_channel()
    return access


async def list_messages(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    *,
    limit: int,
    before: int | None,
    after: int | None,
) -> tuple[list[MessagePayload], bool]:
    """A page of history: newest first (no cursor, or `before` a seq), oldest first
    (`after` a seq); and whether there is more beyond it in that direction.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); BadRequest
    (INVALID_PAGE, NOT_A_TEXT_CHANNEL)."""
    if before is not None and after is not None:
        raise BadRequest("give before or after, not both", code="INVALID_PAGE")
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is 1 to {MAX_PAGE}", code="INVALID_PAGE", field="limit")
    await message_channel(conn, actor, channel_id)
    rows = await q.list_messages(
        conn,
        viewer=actor.user_id,
        channel_id=channel_id,
        limit=limit + 1,
        before=before,
        after=after,
    )
    return [view_json(r) for r in rows[:limit]], len(rows) > limit


async def list_messages_around(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, *, around: int, limit: int
) -> tuple[list[MessagePayload], bool, bool]:
    """A page of history centred on `around` (a seq: the message there, if any, and older
    ones fill `limit - limit // 2` places, newer ones `limit // 2`), newest first; and
    whether there are older and newer messages beyond it.

    Raises: as list_messages."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is 1 to {MAX_PAGE}", code="INVALID_PAGE", field="limit")
    await message_channel(conn, actor, channel_id)
    newer = limit // 2
    older = limit - newer
    rows = await q.list_messages_around(
        conn,
        viewer=actor.user_id,
        channel_id=channel_id,
        around=around,
        older=older + 1,
        newer=newer + 1,
    )
    later = [r for r in rows if r.seq > around]
    earlier = [r for r in rows if r.seq <= around]
    page = later[-newer:] if newer else []
    page += earlier[:older]
    return [view_json(r) for r in page], len(earlier) > older, len(later) > newer


async def get_message(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, message_id: UUID
) -> MessagePayload:
    await message_channel(conn, actor, channel_id)
    row = await q.get_message_view(
        conn, viewer=actor.user_id, channel_id=channel_id, message_id=message_id
    )
    if row is None:
        raise message_not_found()
    return view_json(row)


async def edit_message(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, message_id: UUID, content: str
) -> MessagePayload:
    """The author replaces the text; the earlier version is kept and readable. Editing
    is writing: it needs SEND_MESSAGES (a blocked direct conversation is read-only).

    Without READ_MESSAGE_HISTORY only one's own message may be named (any other id,
    existing or not, is MISSING_PERMISSIONS), and the answer shows no reply preview.

    Raises: NotFound (CHANNEL_NOT_FOUND, MESSAGE_NOT_FOUND); Forbidden
    (NOT_MESSAGE_AUTHOR, SYSTEM_MESSAGE, MISSING_PERMISSIONS, CANNOT_MESSAGE_USER);
    BadRequest (EMPTY_MESSAGE: no text and no file left, MESSAGE_TOO_LONG)."""
    check_content(content, files=True)  # (whether it may show nothing: its files, below)
    async with conn.transaction():
        access = await message_channel(
            conn, actor, channel_id, Permission.SEND_MESSAGES, write=True
        )
        # Its reply preview goes in the event: the target is share-locked so that a
        # deletion of it waits (then scrubs it) or came first. Both in id order, as a
        # bulk deletion takes them.
        target = await q.get_reply_to(conn, channel_id=channel_id, message_id=message_id)
        if target is not None and target < message_id:
            await q.lock_message_shared(conn, message_id=target)
        found = await q.get_message_for_update(conn, channel_id=channel_id, message_id=message_id)
        if not _own_or_readable(access, actor, found):
            raise history_needed()
        if found is None or found.deleted_at is not None:
            raise message_not_found()
        row = found
        if target is not None and target > message_id:
            await q.lock_message_shared(conn, message_id=target)
        if row.author_id is None and await webhooks_q.get_message_webhook(
            conn, message_id=message_id
        ):
            raise Forbidden("nobody edits a webhook's message", code="WEBHOOK_MESSAGE")
        if row.author_id != actor.user_id:
            raise Forbidden("only the author edits a message", code="NOT_MESSAGE_AUTHOR")
        if looks_empty(content) and not await attachments_q.has_attachments(
            conn, message_id=message_id
        ):
            check_content(content)  # a message with files may lose its text, no other
        if row.kind != "default":
            raise Forbidden("a system message cannot be edited", code="SYSTEM_MESSAGE")
        changed = row.content != content
        if changed:
            mentions = await viewers_among(conn, channel_id, mentioned_ids(content))
            everyone: bool = False
            roles: list[UUID] = []
            server_id = access.channel.server_id
            if server_id is not None:
                asked = mentioned_role_ids(content)
                mentionable = (
                    await roles_q.list_mentionable(conn, server_id=server_id, role_ids=asked)
                    if asked
                    else {}
                )
                everyone, roles = loud_mentions(content, access.permissions, mentionable)
            await q.update_message_content(
                conn,
                message_id=message_id,
                content=content,
                mentions=mentions,
                mention_everyone=everyone,
                mention_roles=roles,
            )
        view = await q.get_message_view(
            conn, viewer=actor.user_id, channel_id=channel_id, message_id=message_id
        )
        assert view is not None
        body = view_json(view)
        if changed:
            updated: MessageUpdatedPayload = {
                **_shared(body),
                "previous_mentions": _mentions_of(row),
            }
            await emit(conn, MESSAGE_UPDATED.to_channel(channel_id, updated))
        return body if access.can(HISTORY) else without_history(body)


def _mentions_of(row: q.MessageRow) -> MentionsPayload:
    """Whom a message mentions, as its payload says it."""
    return {
        "mentions": [str(u) for u in row.mentions],
        "mention_roles": [str(r) for r in row.mention_roles],
        "mention_everyone": row.mention_everyone,
    }


def _shared(body: MessagePayload) -> MessagePayload:
    """A message as broadcast to everyone: reaction counts without the viewer's `me`."""
    reactions: list[ReactionPayload] = [
        {"emoji": r["emoji"], "count": r["count"]} for r in body["reactions"]
    ]
    return {**body, "reactions": reactions}


async def list_edits(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, message_id: UUID
) -> list[q.EditRow]:
    """Every earlier version of a message, oldest first (none once it is deleted)."""
    await message_channel(conn, actor, channel_id)
    if await q.get_message_seq(conn, channel_id=channel_id, message_id=message_id) is None:
        raise message_not_found()
    return await q.list_edits(conn, message_id=message_id)


MAX_BULK_DELETE = 100


async def delete_message(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    message_id: UUID,
    reason: str | None = None,
) -> None:
    """The author (or, in a server channel, someone with MANAGE_MESSAGES and
    READ_MESSAGE_HISTORY) deletes a message: its content and earlier versions are gone;
    a tombstone keeps its place. Deleting it again changes nothing. A moderator's
    deletion is audited (`reason`). Without READ_MESSAGE_HISTORY only one's own message
    may be named (any other id, existing or not, is MISSING_PERMISSIONS).

    Raises: NotFound (CHANNEL_NOT_FOUND, MESSAGE_NOT_FOUND); Forbidden
    (NOT_MESSAGE_AUTHOR, TIMED_OUT for another's while timed out, MISSING_PERMISSIONS)."""
    async with conn.transaction():
        # (a moderator's is audited: the server first, as every change of it takes them)
        await servers_q.key_share_channel_server(conn, channel_id=channel_id)
        access = await message_channel(conn, actor, channel_id, Permission.VIEW_CHANNEL, write=True)
        row = await q.get_message_for_update(conn, channel_id=channel_id, message_id=message_id)
        if not _own_or_readable(access, actor, row):
            raise history_needed()  # (a moderator too: one deletes only what one may read)
        if row is None:
            raise message_not_found()
        if row.author_id != actor.user_id and not access.can(Permission.MANAGE_MESSAGES):
            # (a timeout takes MANAGE_MESSAGES away: a moderator is told why, as a pin is)
            if access.facts is not None and access.facts.timed_out:
                raise timed_out()
            raise Forbidden("only the author deletes a message", code="NOT_MESSAGE_AUTHOR")
        if row.deleted_at is not None:
            return
        server_id = access.channel.server_id
        if row.author_id != actor.user_id and server_id is not None:  # a moderator's
            await audit_q.insert_audit_entry(
                conn,
                server_id=server_id,
                actor_id=actor.user_id,
                action="message.deleted",
                target_type="message",
                target_id=message_id,
                changes={"channel_id": str(channel_id), "author_id": str(row.author_id)},
                reason=reason,
            )
        await delete_rows(conn, actor.user_id, channel_id, [row])


async def bulk_delete(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    message_ids: list[UUID],
    reason: str | None = None,
) -> list[str]:
    """A moderator (MANAGE_MESSAGES and READ_MESSAGE_HISTORY: one deletes only what one
    may read) deletes up to MAX_BULK_DELETE messages of a
    server channel at once, in one transaction, audited as one entry. Ids that are not
    live messages of this channel are skipped; the ids deleted are returned.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); BadRequest
    (INVALID_BULK_DELETE)."""
    unique = list(dict.fromkeys(message_ids))
    if not 1 <= len(message_ids) <= MAX_BULK_DELETE:  # (as sent: 101 of one id are 101)
        raise BadRequest(
            f"bulk delete takes 1 to {MAX_BULK_DELETE} message ids",
            code="INVALID_BULK_DELETE",
            field="messages",
        )
    async with conn.transaction():
        await servers_q.key_share_channel_server(conn, channel_id=channel_id)  # (audited)
        access = await message_channel(
            conn,
            actor,
            channel_id,
            Permission.MANAGE_MESSAGES | Permission.READ_MESSAGE_HISTORY,
            write=True,
        )
        rows = [
            r
            for r in await q.lock_messages(conn, channel_id=channel_id, message_ids=unique)
            if r.deleted_at is None
        ]
        if not rows:
            return []
        server_id = access.channel.server_id
        if server_id is not None:
            await audit_q.insert_audit_entry(
                conn,
                server_id=server_id,
                actor_id=actor.user_id,
                action="message.bulk_deleted",
                target_type="channel",
                target_id=channel_id,
                changes={"count": len(rows), "message_ids": [str(r.id) for r in rows]},
                reason=reason,
            )
        await delete_rows(conn, actor.user_id, channel_id, rows)
        return [str(r.id) for r in rows]


async def delete_rows(
    conn: asyncpg.Connection, deleted_by: UUID, channel_id: UUID, rows: list[q.MessageRow]
) -> None:
    """Delete the locked, live `rows` of the channel (its caller checked who may), in
    the caller's transaction: tombstones, the text scrubbed from the event log, and a
    `message.deleted` each."""
    await emit_many(conn, await tombstone_rows(conn, deleted_by, channel_id, rows))


async def tombstone_rows(
    conn: asyncpg.Connection, deleted_by: UUID, channel_id: UUID, rows: list[q.MessageRow]
) -> list[Event]:
    """delete_rows, but its `message.deleted` events are returned for the caller to emit
    with its others (in one emit_many: the streams in the log's lock order)."""
    ids = [r.id for r in rows]
    deleted_at = await q.soft_delete_messages(conn, message_ids=ids, deleted_by=deleted_by)
    # The text also leaves the event log, so a resume cannot replay it.
    await events_q.scrub_message_events(
        conn, channel_id=channel_id, message_ids=ids, deleted_at=deleted_at.isoformat()
    )
    return [
        MESSAGE_DELETED.to_channel(
            channel_id,
            {
                "id": str(r.id),
                "channel_id": str(channel_id),
                "seq": r.seq,
                "deleted_at": deleted_at.isoformat(),
                "author_id": None if r.author_id is None else str(r.author_id),
                **_mentions_of(r),
            },
        )
        for r in rows
    ]


async def delete_recent_of_author(
    conn: asyncpg.Connection,
    deleted_by: UUID,
    server_id: UUID,
    author_id: UUID,
    within_s: int,
    limit: int,
) -> list[Event]:
    """Delete the author's live messages in the server's channels sent in the last
    `within_s` seconds, at most `limit` of them, newest first (among the newest
    `limit` x SCANNED_PER_DELETED they wrote anywhere in that time), in the caller's
    transaction (which checked who may, and holds the server's lock, as every deletion
    of a moderator's takes it first), each channel's as delete_rows deletes them. Their
    `message.deleted` events (one each, in its channel's stream) are returned for the
    caller to emit with its own, in one emit_many: a ban's removal of the member emits
    to channels too (their overrides, their voice state), and a channel's stream taken
    after a higher one's deadlocked with a writer taking both in the log's order."""
    found = await q.list_recent_messages_by_author(
        conn,
        server_id=server_id,
        author_id=author_id,
        within_s=within_s,
        limit=limit,
        scanned=limit * SCANNED_PER_DELETED,
    )
    by_channel: dict[UUID, list[UUID]] = {}
    for m in found:
        by_channel.setdefault(m.channel_id, []).append(m.id)
    events: list[Event] = []
    for channel_id in sorted(by_channel):  # (the channels' message rows in one order)
        rows = [
            r
            for r in await q.lock_messages(
                conn, channel_id=channel_id, message_ids=by_channel[channel_id]
            )
            if r.deleted_at is None  # (none can be: deletions take the server first)
        ]
        if rows:
            events += await tombstone_rows(conn, deleted_by, channel_id, rows)
    return events


async def list_reactors(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    message_id: UUID,
    emoji: str,
    *,
    after_user: UUID | None,
    after_at: datetime | None = None,
    limit: int,
) -> tuple[list[tuple[users_q.PublicUserRow, datetime]], bool]:
    """Who reacted to a message with `emoji`, in the order they did, and when, a page at
    a time (after `after_user`'s reaction, made at `after_at`: without it, at the time
    their reaction has); and whether more follow.

    Raises: NotFound (CHANNEL_NOT_FOUND, MESSAGE_NOT_FOUND); BadRequest (INVALID_EMOJI,
    INVALID_PAGE: `after_at` without `after`; INVALID_CURSOR: `after` without `after_at`
    naming no reaction there)."""
    check_emoji(emoji)
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is 1 to {MAX_PAGE}", code="INVALID_PAGE", field="limit")
    if after_at is not None and after_user is None:  # (was: ignored, the first page again)
        raise BadRequest("after_at goes with after", code="INVALID_PAGE", field="after_at")
    await message_channel(conn, actor, channel_id)
    if await q.get_message_seq(conn, channel_id=channel_id, message_id=message_id) is None:
        raise message_not_found()
    stored = await q.list_reaction_emoji(conn, message_id=message_id, user_id=actor.user_id)
    spellings = [r.emoji for r in same_reaction(stored, emoji)] or [emoji]
    if after_user is not None and after_at is None:
        after_at = await q.get_reaction_time(
            conn, message_id=message_id, emoji=spellings, user_id=after_user
        )
        if after_at is None:  # (was: an empty page, "no more", when others followed it)
            raise BadRequest(
                "that user's reaction is not there (taken back?): follow the page's Link,"
                " which has after_at, or start again without after",
                code="INVALID_CURSOR",
                field="after",
            )
    rows = await q.list_reactors(
        conn,
        message_id=message_id,
        emoji=spellings,
        after_user=after_user,
        after_at=after_at,
        limit=limit + 1,
    )
    return rows[:limit], len(rows) > limit


MAX_REACTION_EMOJI = 20
# Variation selectors ask for text or emoji presentation of the same character.
_PRESENTATION = dict.fromkeys((0xFE0E, 0xFE0F))


def reaction_form(emoji: str) -> str:
    """How a new reaction's emoji is kept: in NFC."""
    return unicodedata.normalize("NFC", emoji)


def reaction_key(emoji: str) -> str:
    """What makes two emoji one reaction: the same characters in NFC, variation
    selectors aside (👍 and 👍 + U+FE0F, a keycap with and without it, é composed and
    decomposed). A skin tone or a joined sequence is another emoji."""
    return reaction_form(emoji).translate(_PRESENTATION)


def same_reaction(stored: list[q.ReactionEmojiRow], emoji: str) -> list[q.ReactionEmojiRow]:
    """The message's reactions that are `emoji`, however each was spelt (more than one
    only for reactions stored before reactions were compared by reaction_key)."""
    key = reaction_key(emoji)
    return [r for r in stored if r.emoji == emoji or reaction_key(r.emoji) == key]


def check_emoji(emoji: str, *, new: bool = False) -> str:
    """An emoji as a path names it; a `new` reaction's also shows something, on one line
    (validation.one_line), and is not only dots: a client's path to "." or ".." is
    collapsed by browsers (and URL libraries) to another route. (A reaction stored
    before that rule can still be listed and taken back.)"""
    try:
        emoji.encode("utf-8")
    except UnicodeEncodeError:
        emoji = ""
    # (U+FFFD is what a path of invalid UTF-8 decodes to: never a reaction anyone chose)
    if not 1 <= len(emoji) <= 64 or any(c.isspace() or ord(c) < 32 or c == "\ufffd" for c in emoji):
        raise BadRequest(
            "an emoji is 1 to 64 characters without spaces", code="INVALID_EMOJI", field="emoji"
        )
    if new and len(reaction_form(emoji)) > 64:  # (kept in NFC: U+0958 is 2)
        raise BadRequest(
            "an emoji is 1 to 64 characters in NFC", code="INVALID_EMOJI", field="emoji"
        )
    if new and (looks_empty(emoji) or not emoji.strip(".") or not one_line(emoji)):
        raise BadRequest(
            "an emoji shows something, on one line, and is not only dots",
            code="INVALID_EMOJI",
            field="emoji",
        )
    return emoji


async def react(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    message_id: UUID,
    emoji: str,
    *,
    add: bool,
) -> None:
    """Add (ADD_REACTIONS and READ_MESSAGE_HISTORY, as Discord asks) or remove the
    actor's reaction; doing it twice changes nothing. Removing needs only VIEW_CHANNEL
    (one takes back what one gave); without READ_MESSAGE_HISTORY it answers the same for
    any id, a message's or not. A message carries at most MAX_REACTION_EMOJI different
    emoji (as Discord's 20): every page of history shows them all. An emoji is one
    reaction however it is spelt (reaction_key): adding joins the message's spelling,
    removing takes back the actor's in any.

    Raises: BadRequest (INVALID_EMOJI, TOO_MANY_REACTIONS); NotFound; Forbidden."""
    check_emoji(emoji, new=add)
    need = Permission.ADD_REACTIONS | HISTORY if add else Permission.VIEW_CHANNEL
    async with conn.transaction():
        access = await message_channel(conn, actor, channel_id, need, write=True)
        # (its row locked: counts hold)
        row = await q.get_message_for_update(conn, channel_id=channel_id, message_id=message_id)
        if row is None or row.deleted_at is not None:
            if not access.can(HISTORY):
                return  # (no reaction of theirs is there: the same answer as for any id)
            raise message_not_found()
        stored = await q.list_reaction_emoji(conn, message_id=message_id, user_id=actor.user_id)
        same = same_reaction(stored, emoji)
        if add:
            if any(r.mine for r in same):
                return  # (theirs already, however it was spelt)
            if not same and len(stored) >= MAX_REACTION_EMOJI:
                raise BadRequest(
                    f"a message carries at most {MAX_REACTION_EMOJI} different reactions",
                    code="TOO_MANY_REACTIONS",
                    field="emoji",
                )
            # Joins the reaction as it is spelt on the message; a new one is kept in NFC.
            spelt = [same[0].emoji] if same else [reaction_form(emoji)]
        else:
            spelt = [r.emoji for r in same if r.mine]
        await _change_reactions(conn, channel_id, message_id, actor.user_id, spelt, add=add)


async def _change_reactions(
    conn: asyncpg.Connection,
    channel_id: UUID,
    message_id: UUID,
    user_id: UUID,
    spelt: list[str],
    *,
    add: bool,
) -> None:
    """Add or remove the user's reaction in each of these spellings, telling everyone
    who sees the channel of each that changed."""
    change = q.insert_reaction if add else q.delete_reaction
    event = REACTION_ADDED if add else REACTION_REMOVED
    for form in spelt:
        if await change(conn, message_id=message_id, user_id=user_id, emoji=form):
            await emit(
                conn,
                event.to_channel(
                    channel_id,
                    {
                        "message_id": str(message_id),
                        "channel_id": str(channel_id),
                        "user_id": str(user_id),
                        "emoji": form,
                    },
                ),
            )


async def remove_reaction(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    message_id: UUID,
    emoji: str,
    user_id: UUID,
) -> None:
    """A moderator (MANAGE_MESSAGES and READ_MESSAGE_HISTORY, as Discord asks) takes
    away someone's reaction, in whatever spelling it was given; one that is not there
    changes nothing. Everyone who sees the channel gets `reaction.removed` naming the
    reactor, as when they take it back.

    Raises: BadRequest (INVALID_EMOJI); NotFound (CHANNEL_NOT_FOUND, MESSAGE_NOT_FOUND);
    Forbidden (MISSING_PERMISSIONS, TIMED_OUT)."""
    check_emoji(emoji)
    async with conn.transaction():
        await message_channel(
            conn, actor, channel_id, Permission.MANAGE_MESSAGES | HISTORY, write=True
        )
        row = await q.get_message_for_update(conn, channel_id=channel_id, message_id=message_id)
        if row is None or row.deleted_at is not None:
            raise message_not_found()
        stored = await q.list_reaction_emoji(conn, message_id=message_id, user_id=user_id)
        spelt = [r.emoji for r in same_reaction(stored, emoji) if r.mine]
        await _change_reactions(conn, channel_id, message_id, user_id, spelt, add=False)


async def acknowledge(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, seq: int
) -> q.ReadStateRow:
    """Record that the actor has read up to `seq` (lower values mark messages unread
    again). The actor's own connections hear of every change (their clients move the
    position); in a conversation the others hear of it as a read receipt only when
    `seq` is above the highest position the actor had reached (a receipt never goes
    back: marking unread, and reading again up to where one had been, tells them
    nothing, as on WhatsApp, Signal or Matrix); in a server channel only the actor's
    own connections hear of it (as on Discord, which has no receipts: a member's
    reading, invisible or not, is nobody else's business).

    Raises: BadRequest (INVALID_SEQ)."""
    async with conn.transaction():
        access = await message_channel(conn, actor, channel_id, Permission.VIEW_CHANNEL, write=True)
        last = await q.get_last_seq(conn, channel_id=channel_id)
        if not 0 <= seq <= last:
            raise BadRequest(f"seq must be between 0 and {last}", code="INVALID_SEQ", field="seq")
        state, changed, raised = await q.upsert_read_state(
            conn, user_id=actor.user_id, channel_id=channel_id, seq=seq
        )
        if not changed:  # (said already: a receipt again would tell everyone nothing)
            return state
        receipt: ReadStatePayload = {
            "channel_id": str(channel_id),
            "user_id": str(actor.user_id),
            "last_read_seq": seq,
        }
        if (
            access.channel.server_id is None
            and raised
            and not await receipts_hidden(conn, access, actor.user_id)
        ):
            await emit(conn, READ_STATE_UPDATED.to_channel(channel_id, receipt))
        else:
            await emit(conn, READ_STATE_UPDATED.to_user(actor.user_id, receipt))
        return state


READ_STATES_SHOWN = 1000


async def receipts_hidden(conn: asyncpg.Connection, access: ChannelAccess, user_id: UUID) -> bool:
    """Whether a direct conversation is closed either way (a block either way, or one
    of the two takes messages from friends only and they are not friends): then neither
    sees the other's read receipts. Reading is activity, as presence is, which a direct
    conversation carries only between friends: through it someone blocked would follow
    when the blocker reads. Either way, so it never tells a block from a choice (each
    of the two learns as much from a send of their own)."""
    channel = access.channel
    if channel.kind != "direct" or channel.dm_user_low is None or channel.dm_user_high is None:
        return False
    if access.closed:
        return True
    peer = channel.dm_user_high if channel.dm_user_low == user_id else channel.dm_user_low
    return await direct_refused(conn, peer, user_id)


async def read_states(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID
) -> list[q.ReadStateRow]:
    """Who of those who may see the channel has read up to where (read receipts; the
    most recent READ_STATES_SHOWN): the others at the highest position they reached
    and when they first reached it (what `read_state.updated` told), the actor at
    their own position; in a server channel, or a direct conversation closed either
    way (receipts_hidden), the actor's own alone (see `acknowledge`)."""
    access = await message_channel(conn, actor, channel_id, Permission.VIEW_CHANNEL)
    if access.channel.server_id is not None or await receipts_hidden(
        conn, access, actor.user_id
    ):  # (one's own alone)
        return await q.list_read_states(conn, channel_id=channel_id, limit=1, user_id=actor.user_id)
    states = await q.list_read_states(conn, channel_id=channel_id, limit=READ_STATES_SHOWN)
    seeing = set(await viewers_among(conn, channel_id, [s.user_id for s in states]))
    return [
        s
        if s.user_id == actor.user_id
        else replace(s, last_read_seq=s.receipt_seq, updated_at=s.receipt_at)
        for s in states
        if s.user_id in seeing
    ]


async def start_typing(conn: asyncpg.Connection, actor: Actor, channel_id: UUID) -> None:
    """Tell the others the actor is typing. Not stored, not resumable: it expires.
    Judged as a send is, under the channel's share lock: a kick, a ban or a lost
    SEND_MESSAGES comes wholly before it (it is refused) or after it (the others hear
    it first). Two round trips, as a check and a notification cost anyway: the check
    without a lock, then a statement that locks and notifies if what it read still
    holds. Only if that changed meanwhile, a transaction judges again under the lock.

    Raises: as message_channel."""
    event = TYPING_STARTED.to_channel(
        channel_id,
        {
            "channel_id": str(channel_id),
            "user_id": str(actor.user_id),
            "expires_in": TYPING_EXPIRES_S,
        },
    )
    access = await message_channel(conn, actor, channel_id, Permission.SEND_MESSAGES)
    if access.facts is not None and await signal_if_facts_hold(conn, event, access.facts._asdict()):
        return
    async with conn.transaction():
        await message_channel(conn, actor, channel_id, Permission.SEND_MESSAGES, write=True)
        await signal(conn, event)


async def resume_point(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, versions: list[str]
) -> tuple[int, str]:
    """(seq, id) of the newest of these message ids (Braid versions) in the channel.

    Raises: NotFound (CHANNEL_NOT_FOUND); Gone (VERSION_UNKNOWN) if one is not a message
    of this channel."""
    await message_channel(conn, actor, channel_id)
    best: tuple[int, str] | None = None
    for version in versions[:MAX_PARENTS]:
        try:
            message_id: UUID | None = UUID(version)
        except ValueError:
            message_id = None
        seq = (
            None
            if message_id is None
            else await q.get_message_seq(conn, channel_id=channel_id, message_id=message_id)
        )
        if seq is None:
            raise Gone(
                f"version {version!r} is not a message of this channel; subscribe without Parents",
                code="VERSION_UNKNOWN",
            )
        if best is None or seq > best[0]:
            # (the id as the server writes versions, not as the client spelt it: upper
            # case, braces and `urn:uuid:` name the same message, and the first patch's
            # Parents must be a Version this server handed out)
            best = (seq, str(message_id))
    assert best is not None
    return best
