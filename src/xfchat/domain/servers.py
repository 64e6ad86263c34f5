"""Servers: create, read, change, hand over and delete them.

Every change of a server, its members, roles, channels or overrides runs in one
transaction that first locks the server's row (`access_server(..., lock=True)`), so they
happen one at a time and each knows exactly who could see what before and after it.
Configuration and moderation changes are written to the audit log in that transaction.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import audit as audit_q
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import media as media_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import search as search_q
from xfchat.db.queries import servers as q
from xfchat.domain.access import (
    ServerAccess,
    VisibleChannel,
    access_server,
    server_not_found,
    server_viewers,
    visible_channels,
)
from xfchat.domain.account_lock import hold_accounts
from xfchat.domain.accounts import Actor
from xfchat.domain.audit_diff import field_diff, row_diff
from xfchat.domain.event_payloads import (
    ServerJoinedPayload,
    ServerPayload,
)
from xfchat.domain.events import (
    MEMBER_UPDATED,
    SERVER_JOINED,
    SERVER_LEFT,
    SERVER_UPDATED,
    emit,
    emit_many,
)
from xfchat.domain.messages_purge import purge_channels
from xfchat.domain.permissions import EVERYONE_DEFAULT, Permission
from xfchat.domain.server_views import joined_json, joined_many, member_json, server_json
from xfchat.domain.validation import check_one_line, looks_empty
from xfchat.domain.visibility import settle, watch
from xfchat.errors import BadRequest, Forbidden, NotFound

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UPLOADED_ICON = re.compile(rf"/api/media/({_UUID})")  # as media_url writes it, only so
ICON_URL = re.compile(rf"{UPLOADED_ICON.pattern}|https?://[^\s]{{1,2040}}")
MAX_SERVERS_PER_USER = 200  # each is a stream every connection of its members follows
MAX_NAME = 100
MAX_DESCRIPTION = 1024
MAX_REASON = 512
# (what a server.updated entry's diff may name: what PATCH changes)
SERVER_FIELDS = ("name", "description", "icon_url", "search_language", "default_notifications")
# A server's default notification level: what its members' clients notify them of where
# neither the channel nor the server has a setting of theirs (README, "Notification
# settings"); `nothing` is a member's own choice, never a server's.
DEFAULT_NOTIFICATIONS = ("all", "mentions")
DEFAULT_CHANNEL = "general"


def text_field(
    value: str | None, field: str, most: int, code: str, *, least: int = 1, name: bool = False
) -> str | None:
    """Trimmed, `least` to `most` characters (showing something, if any are needed); a
    name is also one line (validation.one_line)."""
    if value is None:
        return None
    value = value.strip()
    if not least <= len(value) <= most or (least and looks_empty(value)):
        raise BadRequest(f"{field} is {least} to {most} characters", code=code, field=field)
    return check_one_line(value, field=field, code=code) if name else value


def server_name(value: str | None) -> str | None:
    return text_field(value, "name", MAX_NAME, "INVALID_SERVER_NAME", name=True)


def audit_reason(value: str | None) -> str | None:
    """The X-Audit-Log-Reason header's text (at most 512 characters)."""
    return text_field(value, "reason", MAX_REASON, "INVALID_AUDIT_REASON", least=0) or None


async def audit(
    conn: asyncpg.Connection,
    access: ServerAccess,
    action: str,
    *,
    target_type: str | None = None,
    target_id: UUID | None = None,
    changes: dict[str, Any] | None = None,
    reason: str | None = None,
    diff: list[dict[str, Any]] | None = None,
) -> None:
    """Write an audit-log entry (call inside the change's own transaction); an update's
    `diff` is each changed field's old and new value (domain/audit_diff.py)."""
    await audit_q.insert_audit_entry(
        conn,
        server_id=access.facts.server_id,
        actor_id=access.facts.user_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        changes=changes or {},
        reason=reason,
        diff=diff,
    )


# -- what users do


async def check_room(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Refuse a 201st server (in the caller's transaction, which then holds the user's
    row until it ends: concurrent joins cannot both take the last place)."""
    if await q.count_user_servers(conn, user_id=user_id, lock=True) >= MAX_SERVERS_PER_USER:
        raise Forbidden(
            f"you are a member of {MAX_SERVERS_PER_USER} servers already",
            code="TOO_MANY_SERVERS",
        )


async def create_server(
    conn: asyncpg.Connection, actor: Actor, *, name: str, description: str | None
) -> ServerJoinedPayload:
    """Create a server owned by the actor, with its @everyone role and a #general text
    channel.

    Raises: BadRequest (INVALID_SERVER_NAME, INVALID_DESCRIPTION); Forbidden
    (TOO_MANY_SERVERS); Unauthorized (SESSION_REVOKED: the account deleted meanwhile)."""
    checked = server_name(name)
    assert checked is not None
    about = text_field(description, "description", MAX_DESCRIPTION, "INVALID_DESCRIPTION", least=0)
    async with conn.transaction():
        await hold_accounts(conn, actor)  # (first: domain/account_lock.py)
        await check_room(conn, actor.user_id)
        server = await q.insert_server(
            conn, name=checked, owner_id=actor.user_id, description=about or None
        )
        await roles_q.insert_role(
            conn,
            server_id=server.id,
            name="@everyone",
            permissions=int(EVERYONE_DEFAULT),
            position=0,
            is_default=True,
        )
        await q.insert_server_member(conn, server_id=server.id, user_id=actor.user_id)
        await channels_q.insert_channel(
            conn, kind="text", server_id=server.id, name=DEFAULT_CHANNEL
        )
        row = await q.get_server(conn, server_id=server.id)
        assert row is not None
        joined = await joined_json(conn, row, actor.user_id)
        await emit(conn, SERVER_JOINED.to_user(actor.user_id, joined))
    return joined


async def get_server(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID
) -> ServerJoinedPayload:
    """A server the actor is a member of, as they see it.

    Raises: NotFound (SERVER_NOT_FOUND)."""
    await access_server(conn, actor, server_id)
    row = await q.get_server(conn, server_id=server_id)
    if row is None:
        raise server_not_found()
    return await joined_json(conn, row, actor.user_id)


async def list_joined(
    conn: asyncpg.Connection,
    actor: Actor,
    visible: dict[UUID, VisibleChannel] | None = None,
) -> list[ServerJoinedPayload]:
    """Each of the actor's servers as they see it (at most MAX_SERVERS_PER_USER), in
    a fixed number of statements (`visible`: the actor's visible channels, when the
    caller has them already)."""
    rows = await q.list_user_servers(conn, user_id=actor.user_id)
    if not rows:
        return []
    if visible is None:
        visible = await visible_channels(conn, actor.user_id)
    permissions = {c: v.permissions for c, v in visible.items()}
    return await joined_many(conn, rows, actor.user_id, permissions)


async def list_servers(conn: asyncpg.Connection, actor: Actor) -> list[ServerPayload]:
    return [server_json(r) for r in await q.list_user_servers(conn, user_id=actor.user_id)]


async def _check_uploaded_icon(conn: asyncpg.Connection, actor: Actor, url: str) -> None:
    """An uploaded image given as a new icon must be an icon its setter uploaded: another
    server's would otherwise be pinned (never freed) or deleted when replaced here.

    Raises: BadRequest (INVALID_ICON_URL)."""
    uploaded = UPLOADED_ICON.fullmatch(url)
    if uploaded is None:
        return
    # (share-locked: a server that stops showing it meanwhile deletes it only if none
    # shows it after this commits)
    found = await media_q.get_media_info(conn, media_id=UUID(uploaded.group(1)), share=True)
    if found is None or found.purpose != "icon" or found.owner_id != actor.user_id:
        raise BadRequest(
            "icon_url names an image you did not upload as an icon"
            " (PUT /api/servers/{id}/icon uploads one)",
            code="INVALID_ICON_URL",
            field="icon_url",
        )


async def update_server(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    *,
    fields: dict[str, Any],
    reason: str | None,
    count_reindex: Callable[[asyncpg.Connection], Awaitable[object]] | None = None,
) -> ServerPayload:
    """Change a server's name, description, icon URL, search language or default
    notification level (MANAGE_SERVER). `fields` holds
    only what the client sent; a null description or icon clears it. A change of the
    language is first counted by `count_reindex`, in the transaction (one that fails
    is not counted), which raises to refuse it. A change of nothing (each field as it
    would be stored is as it is) answers the server and writes and tells nothing.

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); BadRequest."""
    name = server_name(fields.get("name")) if "name" in fields else None
    if "name" in fields and name is None:
        raise BadRequest("a server needs a name", code="INVALID_SERVER_NAME", field="name")
    description = text_field(
        fields.get("description"), "description", MAX_DESCRIPTION, "INVALID_DESCRIPTION", least=0
    )
    icon = fields.get("icon_url")
    if icon is not None and not ICON_URL.fullmatch(icon):
        raise BadRequest(
            "icon_url is an uploaded image (/api/media/{id}) or an http(s) URL",
            code="INVALID_ICON_URL",
            field="icon_url",
        )
    language = fields.get("search_language")
    if "search_language" in fields and language not in await search_q.list_languages(conn):
        raise BadRequest(
            "search_language is a text search configuration such as english or simple",
            code="INVALID_SEARCH_LANGUAGE",
            field="search_language",
        )
    default = fields.get("default_notifications")
    if "default_notifications" in fields and default not in DEFAULT_NOTIFICATIONS:
        raise BadRequest(
            "default_notifications is all or mentions",
            code="VALIDATION_ERROR",
            field="default_notifications",
        )
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_SERVER, lock=True
        )
        before = await q.get_server(conn, server_id=server_id)
        assert before is not None
        # Judged again here, under the lock, on the values as they would be stored (the
        # API's check of a change of nothing is of the values as sent, before the lock:
        # " srv " over "srv", "" over no description, or a change another made meanwhile
        # was written, audited and told, an entry whose diff was empty).
        stored = {
            "name": name,
            "description": description or None,
            "icon_url": icon,
            "search_language": language,
            "default_notifications": default,
        }
        if all(stored[k] == getattr(before, k) for k in SERVER_FIELDS if k in fields):
            return server_json(before)  # changes nothing: none written, none told
        if icon is not None and icon != before.icon_url:
            await _check_uploaded_icon(conn, actor, icon)
        row = await q.update_server(
            conn,
            server_id=server_id,
            name=name,
            description=description or None,
            clear_description="description" in fields and not description,
            icon_url=fields.get("icon_url"),
            clear_icon_url="icon_url" in fields and fields["icon_url"] is None,
            search_language=language,
            default_notifications=default,
        )
        assert row is not None
        if language is not None and language != before.search_language:
            if count_reindex is not None:
                await count_reindex(conn)
            # (its earlier messages re-indexed after it: domain/search_reindex.py)
            await search_q.queue_reindex(conn, server_id=server_id, earlier=before.search_language)
        if row.icon_url != before.icon_url:  # an uploaded icon replaced: its URL goes
            await media_q.delete_uploaded_icon(conn, url=before.icon_url)
        payload = server_json(row)
        diff = row_diff(before, row, [k for k in SERVER_FIELDS if k in fields])
        await audit(conn, access, "server.updated", changes=fields, reason=reason, diff=diff)
        await emit(conn, SERVER_UPDATED.to_server(server_id, payload))
    return payload


def running_timeout(until: datetime | None) -> datetime | None:
    """A member's timeout if it still runs (one run out already is no timeout)."""
    return until if until is not None and until > datetime.now(UTC) else None


async def transfer_server(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, new_owner: UUID, reason: str | None
) -> ServerPayload:
    """Hand the server to another member (owner only). The owner cannot be timed out:
    a timeout of the new owner ends, audited and announced as a moderator's removal of
    it is (`member.timed_out`, `member.updated`).

    Raises: NotFound (SERVER_NOT_FOUND, MEMBER_NOT_FOUND); Forbidden (NOT_SERVER_OWNER,
    USER_DELETED: the new owner's account deleted meanwhile)."""
    async with conn.transaction():
        # The new owner's account is not being deleted (domain/account_lock.py): its
        # deletion, refused while it owns a server, comes wholly before or after.
        await hold_accounts(conn, None, [new_owner])
        access = await access_server(conn, actor, server_id, lock=True)
        if not access.owner:
            raise Forbidden("only the server's owner can do that", code="NOT_SERVER_OWNER")
        member = await q.get_member(conn, server_id=server_id, user_id=new_owner)
        if member is None:
            raise NotFound("no such member", code="MEMBER_NOT_FOUND")
        # The owner sees every channel: the old one may lose some, the new one gain some.
        seen = await watch(conn, server_id, user_ids=[actor.user_id, new_owner])
        row = await q.update_server(conn, server_id=server_id, owner_id=new_owner)
        assert row is not None
        untimed = None
        # Only a running timeout ends (audited and announced); one run out already is
        # no timeout, and is left as it is: clearing it without a word would change the
        # member that REST shows and not the one members keep from the events.
        if running_timeout(member.timed_out_until) is not None:
            untimed = await q.update_member(
                conn, server_id=server_id, user_id=new_owner, clear_timeout=True
            )
            assert untimed is not None
            await audit(
                conn,
                access,
                "member.timed_out",
                target_type="user",
                target_id=new_owner,
                changes={"timed_out_until": None},
                reason=reason,
                diff=field_diff(
                    {"timed_out_until": member.timed_out_until}, {"timed_out_until": None}
                ),
            )
        await settle(conn, seen, "permissions")  # (which tells sends of the change too)
        payload = server_json(row)
        await audit(
            conn,
            access,
            "server.transferred",
            target_type="user",
            target_id=new_owner,
            changes={"owner_id": str(new_owner)},
            reason=reason,
            diff=field_diff({"owner_id": actor.user_id}, {"owner_id": new_owner}),
        )
        events = [SERVER_UPDATED.to_server(server_id, payload)]
        if untimed is not None:
            events.append(MEMBER_UPDATED.to_server(server_id, await member_json(conn, untimed)))
        await emit_many(conn, events)
    return payload


async def delete_server(conn: asyncpg.Connection, actor: Actor, server_id: UUID) -> None:
    """Delete a server and everything in it, in one transaction (owner only); every
    member is told it is gone.

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (NOT_SERVER_OWNER)."""
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, lock=True)
        if not access.owner:
            raise Forbidden("only the server's owner can delete it", code="NOT_SERVER_OWNER")
        channels = await channels_q.list_server_channels(conn, server_id=server_id)
        viewers = await server_viewers(conn, server_id, [c.id for c in channels])
        members = await q.list_member_ids(conn, server_id=server_id)
        await emit_many(
            conn,
            [
                SERVER_LEFT.to_user(
                    m,
                    {
                        "id": str(server_id),
                        "reason": "deleted",
                        "channel_ids": [str(c.id) for c in channels if m in viewers[c.id]],
                    },
                )
                for m in members
            ],
        )
        server = await q.get_server(conn, server_id=server_id)
        await purge_channels(conn, [c.id for c in channels])
        await q.delete_server(conn, server_id=server_id)
        await media_q.delete_uploaded_icon(conn, url=server.icon_url if server else None)


def _ban_deletions_seen(changes: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    """A ban's deletions as a reader who sees only the channels `seen` is shown them:
    the count of those channels' alone (the ban deleted in every channel, and the whole
    count told them how many messages the user had sent where they cannot look). An
    entry written before the counts were kept by channel (no `deleted_in`) says no
    count to them."""
    by_channel = changes.get("deleted_in")
    shown = {k: v for k, v in changes.items() if k not in ("deleted_messages", "deleted_in")}
    if not isinstance(by_channel, dict):
        return shown
    mine = {c: n for c, n in by_channel.items() if c in seen}
    return {**shown, "deleted_messages": sum(mine.values()), "deleted_in": mine}


def _parents_seen(r: audit_q.AuditRow, seen: set[str]) -> audit_q.AuditRow:
    """A channel.created or channel.updated entry as a reader who sees only the
    channels `seen` is shown it: a category it was made in, left or entered that they
    cannot see is not named (its id would tell of a hidden category), neither in
    `changes` nor in `diff`."""

    def hidden(v: object) -> bool:
        return v is not None and v not in seen

    changes = r.changes
    if hidden(changes.get("parent_id")):
        changes = {k: v for k, v in changes.items() if k != "parent_id"}
    diff = r.diff
    if diff is not None:
        diff = [
            d
            for d in diff
            if d.get("key") != "parent_id"
            or not (hidden(d.get("old_value")) or hidden(d.get("new_value")))
        ]
    return replace(r, changes=changes, diff=diff)


async def _readable(
    conn: asyncpg.Connection, access: ServerAccess, rows: list[audit_q.AuditRow]
) -> list[audit_q.AuditRow]:
    """The entries the reader may read: none about a channel they cannot see now (or
    a message of one, or a voice move from or to one), no category they cannot see as
    a channel's old or new parent, and invite codes only for those who may list invites. (A page
    may come out shorter than asked; `before` still pages on.) The owner and
    administrators see everything, deleted channels' entries included."""
    if access.can(Permission.ADMINISTRATOR):
        return rows
    channels = await channels_q.list_server_channels(conn, server_id=access.facts.server_id)
    viewers = await server_viewers(
        conn, access.facts.server_id, [c.id for c in channels], [access.facts.user_id]
    )
    seen = {str(c) for c, who in viewers.items() if who}
    out = []
    for r in rows:
        channel = str(r.target_id) if r.target_type == "channel" else r.changes.get("channel_id")
        if channel is not None and channel not in seen:
            continue
        if r.action == "member.voice_updated" and "channel_id" in r.changes:
            # A move or disconnect tells of the channel it was from too. Entries written
            # before they recorded it (no `from_channel_id`) could be from any channel:
            # left out, as about a channel one cannot see.
            if r.changes.get("from_channel_id") not in seen:
                continue
        if r.action == "webhook.updated" and any(
            d.get("key") == "channel_id" and d.get("old_value") not in seen for d in r.diff or []
        ):
            continue  # (a move out of a channel hidden from the reader tells of it)
        if r.action in ("channel.created", "channel.updated"):
            # (a category it was made in, moved out of or into, hidden from the reader,
            # is not named: not as a new value, nor as an old one)
            r = _parents_seen(r, seen)
        if r.action == "channel.reordered":
            # (its diff's keys are channel ids too: old positions of hidden ones stay hidden)
            diff = None if r.diff is None else [d for d in r.diff if d.get("key") in seen]
            r = replace(r, changes={k: v for k, v in r.changes.items() if k in seen}, diff=diff)
        if r.action == "member.banned" and "deleted_messages" in r.changes:
            r = replace(r, changes=_ban_deletions_seen(r.changes, seen))
        if r.target_type == "invite" and not access.can(Permission.MANAGE_SERVER):
            r = replace(r, changes={k: v for k, v in r.changes.items() if k != "code"})
        out.append(r)
    return out


AUDIT_ACTIONS = (
    "server.updated server.transferred channel.created channel.updated channel.deleted"
    " channel.reordered role.created role.updated role.deleted role.reordered"
    " override.updated override.deleted member.updated member.timed_out member.kicked"
    " member.banned member.unbanned member.role_added member.role_removed member.voice_updated"
    " invite.created invite.deleted message.deleted message.bulk_deleted"
    " webhook.created webhook.updated webhook.deleted webhook.token_reset"
).split()


async def list_audit_log(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    *,
    actor_id: UUID | None,
    action: str | None,
    before: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the server's audit log, newest first (VIEW_AUDIT_LOG), of one actor or
    action if given, before the entry `before`: the readable ones among the `limit`
    entries read, and the `before` of the next page (None at the end). An entry left out
    still counts as read, so the page may be short, even empty, with more to come; the
    next page starts after the last one shown (else after the last one read: a page of
    hidden entries only), so no id of a hidden entry is handed out while one shown will do.

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); BadRequest
    (INVALID_AUDIT_ACTION)."""
    if action is not None and action not in AUDIT_ACTIONS:
        raise BadRequest(
            f"action is one of {', '.join(AUDIT_ACTIONS)}",
            code="INVALID_AUDIT_ACTION",
            field="action",
        )
    access = await access_server(conn, actor, server_id, need=Permission.VIEW_AUDIT_LOG)
    read = await audit_q.list_audit_entries(
        conn, server_id=server_id, before=before, limit=limit + 1, actor_id=actor_id, action=action
    )
    rows = await _readable(conn, access, read[:limit])
    # Whether more follow is the read's to say, not the page's (was: a page shortened
    # by one hidden entry said there was no more, and the older entries were lost).
    next_before = None
    if len(read) > limit:
        next_before = rows[-1].id if rows else read[limit - 1].id
    return [
        {
            "id": str(r.id),
            "actor_id": str(r.actor_id) if r.actor_id else None,
            "action": r.action,
            "target_type": r.target_type,
            "target_id": str(r.target_id) if r.target_id else None,
            "changes": r.changes,
            "diff": r.diff,
            "reason": r.reason,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ], next_before
