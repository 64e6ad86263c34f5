"""Server members: who is in a server, their nicknames and timeouts, and how they leave
(on their own, kicked or banned).

Removing a member ends their view of the server in the same commit: `server.left` to
them (the real-time core stops delivering the server's and its channels' events to
their connections from that place in the log on), `member.removed` to the others.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import bans as bans_q
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import servers as q
from xfchat.db.queries import users as users_q
from xfchat.domain import user_targets, voice
from xfchat.domain.access import (
    ServerAccess,
    access_changed_many,
    access_server,
    is_administrator,
    member_servers,
    viewers_in_servers,
)
from xfchat.domain.accounts import Actor
from xfchat.domain.audit_diff import field_diff
from xfchat.domain.event_payloads import (
    MemberPayload,
    MemberRemovedPayload,
)
from xfchat.domain.events import (
    MEMBER_REMOVED,
    MEMBER_UPDATED,
    SERVER_LEFT,
    Event,
    emit_many,
)
from xfchat.domain.messages import delete_recent_of_author
from xfchat.domain.permissions import Permission
from xfchat.domain.profile import public_profile
from xfchat.domain.server_views import (
    followers_among,
    member_json,
    members_json,
    overrides_changed,
)
from xfchat.domain.servers import audit, running_timeout, text_field
from xfchat.domain.validation import check_not_everyone, looks_empty
from xfchat.errors import BadRequest, Forbidden, NotFound

MAX_PAGE = 1000
MAX_NICKNAME = 32
MAX_TIMEOUT = timedelta(days=28)  # as Discord
# A ban's deletion of the user's recent messages (as Discord's delete_message_seconds):
# a window of at most 7 days, and at most this many messages, newest first, so that one
# request's transaction stays bounded however much they wrote.
MAX_DELETE_MESSAGE_SECONDS = 7 * 24 * 3600
MAX_BAN_DELETED_MESSAGES = 1000


def member_not_found() -> NotFound:
    return NotFound("no such member", code="MEMBER_NOT_FOUND")


def check_outranks(access: ServerAccess, target: q.MemberRow | None) -> None:
    """The actor may act on this member: not the owner, and (unless the actor owns the
    server) below the actor's highest role.

    Raises: Forbidden (ROLE_HIERARCHY)."""
    if target is None:
        return
    if target.user_id == access.facts.owner_id:
        raise Forbidden("nobody can do that to the server's owner", code="ROLE_HIERARCHY")
    if not access.outranks(target.top_position):
        raise Forbidden(
            "their highest role is at or above yours", code="ROLE_HIERARCHY", field="user_id"
        )


async def _target(conn: asyncpg.Connection, server_id: UUID, user_id: UUID) -> q.MemberRow:
    member = await q.get_member(conn, server_id=server_id, user_id=user_id)
    if member is None:
        raise member_not_found()
    return member


async def list_members(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, *, after: UUID | None, limit: int
) -> list[MemberPayload]:
    """A page of the server's members, by user id (pass the last one's id as `after`).

    Raises: NotFound (SERVER_NOT_FOUND)."""
    await access_server(conn, actor, server_id)
    rows = await q.list_members(conn, server_id=server_id, after=after, limit=limit)
    users = {
        u.id: u for u in await users_q.list_public_users(conn, user_ids=[r.user_id for r in rows])
    }
    return [members_json(r, users[r.user_id]) for r in rows]


async def get_member(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, user_id: UUID
) -> MemberPayload:
    """Raises: NotFound (SERVER_NOT_FOUND, MEMBER_NOT_FOUND)."""
    await access_server(conn, actor, server_id)
    return await member_json(conn, await _target(conn, server_id, user_id))


async def update_member(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    user_id: UUID,
    *,
    fields: dict[str, Any],
    reason: str | None,
) -> MemberPayload:
    """Change a member's nickname (your own with CHANGE_NICKNAME, others' with
    MANAGE_NICKNAMES) or timeout (`timed_out_until`, MODERATE_MEMBERS; null ends it; at
    most 28 days ahead). Acting on someone else needs to outrank them.

    Raises: NotFound (SERVER_NOT_FOUND, MEMBER_NOT_FOUND); Forbidden
    (MISSING_PERMISSIONS, ROLE_HIERARCHY, TIMED_OUT); BadRequest (INVALID_NICKNAME,
    INVALID_TIMEOUT)."""
    nickname = text_field(
        fields.get("nickname"), "nickname", MAX_NICKNAME, "INVALID_NICKNAME", least=0, name=True
    )
    if nickname and looks_empty(nickname):  # ("" or null clears it: this would not)
        raise BadRequest(
            "a nickname shows some text; null or an empty string clears it",
            code="INVALID_NICKNAME",
            field="nickname",
        )
    until = _timeout(fields["timed_out_until"]) if fields.get("timed_out_until") else None
    self_only = user_id == actor.user_id and "timed_out_until" not in fields
    need = Permission(0)
    if "nickname" in fields:
        need |= Permission.CHANGE_NICKNAME if self_only else Permission.MANAGE_NICKNAMES
    if "timed_out_until" in fields:
        need |= Permission.MODERATE_MEMBERS
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, need=need, lock=True)
        target = await _target(conn, server_id, user_id)
        if not fields:  # nothing to change: nothing audited or announced
            return await member_json(conn, target)
        if nickname and nickname != target.nickname:  # (one stored before the rule stays)
            check_not_everyone(nickname, field="nickname", code="INVALID_NICKNAME")
        if not self_only:
            check_outranks(access, target)
        if until is not None:
            await _check_timeout_target(conn, server_id, user_id)
        # Only what changes is written, audited and announced (as Discord): lifting a
        # timeout nobody had was a `member.timed_out` entry of a removal, and a
        # `member.updated` to every member, of nothing; so was a nickname equal to the
        # one there once stored (" Bee " over "Bee": an entry whose diff was empty).
        # (One run out already is no timeout, and is left as it is, as a transfer
        # leaves it.)
        running = running_timeout(target.timed_out_until)
        fields = {
            k: v
            for k, v in fields.items()
            if (k == "nickname" and (nickname or None) != target.nickname)
            or (k == "timed_out_until" and until != running)
        }
        if not fields:
            return await member_json(conn, target)
        row = await q.update_member(
            conn,
            server_id=server_id,
            user_id=user_id,
            nickname=nickname or None,
            clear_nickname="nickname" in fields and not nickname,
            timed_out_until=until,
            clear_timeout="timed_out_until" in fields and until is None,
        )
        assert row is not None
        if "timed_out_until" in fields:
            # Sends and reactions check permissions in their own statements: make them
            # see the timeout (domain/access.py).
            channels = await channels_q.list_server_channels(conn, server_id=server_id)
            await access_changed_many(conn, [c.id for c in channels])
        # No voice while timed out.
        timed = "timed_out_until" in fields and until is not None
        ended = await voice.end_member_state(conn, [server_id], user_id) if timed else []
        # What it is now, as stored (was: as sent, " Bee " for the "Bee" written).
        stored = {"nickname": row.nickname, "timed_out_until": row.timed_out_until}
        changes = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in stored.items()
            if k in fields
        }
        # One's own nickname too (as Discord's log shows it), its count bounded by the
        # `nickname` rate limit (api/members.py).
        action = "member.timed_out" if "timed_out_until" in fields else "member.updated"
        await audit(
            conn,
            access,
            action,
            target_type="user",
            target_id=user_id,
            changes=changes,
            reason=reason,
            # (what it replaced, read under the server's lock: a timeout run out already
            # was none)
            diff=field_diff(
                {"nickname": target.nickname, "timed_out_until": running},
                stored,
                [k for k in stored if k in fields],
            ),
        )
        payload = await member_json(conn, row)
        await emit_many(conn, [MEMBER_UPDATED.to_server(server_id, payload), *ended])
    return payload


def _timeout(value: Any) -> datetime:
    until = value if isinstance(value, datetime) else None
    if until is None or until.tzinfo is None:
        raise BadRequest(
            "timed_out_until is a time with a zone", code="INVALID_TIMEOUT", field="timed_out_until"
        )
    now = datetime.now(UTC)
    if not now < until <= now + MAX_TIMEOUT:
        raise BadRequest(
            "a timeout ends in the future, at most 28 days from now",
            code="INVALID_TIMEOUT",
            field="timed_out_until",
        )
    return until


async def _check_timeout_target(conn: asyncpg.Connection, server_id: UUID, user_id: UUID) -> None:
    if await is_administrator(conn, server_id, user_id):
        raise Forbidden("administrators cannot be timed out", code="ROLE_HIERARCHY")


async def remove_member(
    conn: asyncpg.Connection, server_id: UUID, user_id: UUID, reason: str
) -> bool:
    """Take a member out of the server (in the caller's transaction, which holds the
    server's lock): they are told which channels go, the others that they left. What
    their own overrides deny lingers, as a timeout does, for a rejoin; what they allow
    goes, and so do their mutes and notification settings of the server and its
    channels. False if they were not a member."""
    return bool(await _remove_from(conn, user_id, [server_id], reason, rejoins=True))


async def leave_servers_deleted(
    conn: asyncpg.Connection, user_id: UUID, server_ids: list[UUID]
) -> None:
    """An account being deleted leaves those of these servers it is still a member of, as
    leaving does, but with nothing kept for a rejoin that never comes: the denies of its
    own overrides go too, and so do those that lingered in the servers it had left. All
    at once, in about fifteen statements however many servers, where one server at a
    time took seventeen or eighteen each (the caller holds the servers' locks, and the
    account owns none of them)."""
    member_of = set(await member_servers(conn, user_id))
    await _remove_from(
        conn, user_id, [s for s in server_ids if s in member_of], "left", rejoins=False
    )
    left_before = [s for s in server_ids if s not in member_of]
    overridden = set(
        await q.drop_member_overrides(
            conn, server_ids=left_before, user_id=user_id, keep_denies=False
        )
    )
    if overridden:
        channels = await channels_q.list_channels_of_servers(conn, server_ids=left_before)
        changed = [c for c in channels if c.id in overridden]
        events = await overrides_changed(conn, changed, followers_among(changed, channels))
        await emit_many(conn, events)


async def _remove_from(
    conn: asyncpg.Connection, user_id: UUID, server_ids: list[UUID], reason: str, *, rejoins: bool
) -> list[UUID]:
    """remove_member of the user from each of these servers they are a member of (the
    caller holds their locks), a statement (four for who saw which channel) for all of
    them a step; the servers they were taken out of, in the order given. (`rejoins`
    false: their overrides' denies go too.)"""
    servers, events = await _removal(conn, user_id, server_ids, reason, rejoins=rejoins)
    await emit_many(conn, events)
    return servers


async def _removal(
    conn: asyncpg.Connection, user_id: UUID, server_ids: list[UUID], reason: str, *, rejoins: bool
) -> tuple[list[UUID], list[Event]]:
    """_remove_from, its events returned for the caller to emit (with its own)."""
    if not server_ids:
        return [], []
    of_server: dict[UUID, list[channels_q.ChannelRow]] = {s: [] for s in server_ids}
    for c in await channels_q.list_channels_of_servers(conn, server_ids=server_ids):
        assert c.server_id is not None
        of_server[c.server_id].append(c)  # (each server's in display order)
    viewers = await viewers_in_servers(
        conn, user_id, {s: [c.id for c in of_server[s]] for s in server_ids}
    )
    left = set(await q.delete_server_members(conn, server_ids=server_ids, user_id=user_id))
    servers = [s for s in server_ids if s in left]
    if not servers:
        return [], []
    channels = [c for s in servers for c in of_server[s]]
    # What their own overrides allow goes with them; what they deny waits for a rejoin
    # (leaving and coming back by an invite undid a moderator's member override).
    overridden = set(
        await q.drop_member_overrides(
            conn, server_ids=servers, user_id=user_id, keep_denies=rejoins
        )
    )
    await access_changed_many(conn, [c.id for c in channels])
    await user_targets.forget_servers(conn, user_id, servers)
    ended = await voice.end_member_state(conn, servers, user_id)
    events: list[Event] = []
    for s in servers:
        channel_ids = [str(c.id) for c in of_server[s] if user_id in viewers[s][c.id]]
        removed: MemberRemovedPayload = {
            "server_id": str(s),
            "user_id": str(user_id),
            "reason": reason,
        }
        events += [
            SERVER_LEFT.to_user(
                user_id, {"id": str(s), "reason": reason, "channel_ids": channel_ids}
            ),
            MEMBER_REMOVED.to_server(s, removed),
        ]
    events += ended
    changed = [c for c in channels if c.id in overridden]
    events += await overrides_changed(conn, changed, followers_among(changed, channels))
    return servers, events


async def leave_server(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
) -> None:
    """Leave a server (its owner hands it over or deletes it instead).

    Raises: NotFound (SERVER_NOT_FOUND); BadRequest (OWNER_CANNOT_LEAVE)."""
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, lock=True)
        if access.owner:
            raise BadRequest(
                "the owner hands the server over or deletes it", code="OWNER_CANNOT_LEAVE"
            )
        await remove_member(conn, server_id, actor.user_id, "left")


async def kick_member(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, user_id: UUID, reason: str | None
) -> None:
    """Raises: NotFound (SERVER_NOT_FOUND, MEMBER_NOT_FOUND); Forbidden
    (MISSING_PERMISSIONS, ROLE_HIERARCHY)."""
    if user_id == actor.user_id:  # (whoever asks, of whatever server: it tells nothing)
        raise BadRequest("leave instead of kicking yourself", code="CANNOT_KICK_SELF")
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.KICK_MEMBERS, lock=True
        )
        target = await _target(conn, server_id, user_id)
        check_outranks(access, target)
        await remove_member(conn, server_id, user_id, "kicked")
        await audit(
            conn, access, "member.kicked", target_type="user", target_id=user_id, reason=reason
        )


async def ban_member(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    user_id: UUID,
    reason: str | None,
    delete_message_seconds: int = 0,
    *,
    max_deleted: int = MAX_BAN_DELETED_MESSAGES,
) -> int:
    """Ban a user (a member, who is removed, or anyone else): no invite lets them join
    until they are unbanned. With `delete_message_seconds` (0 to
    MAX_DELETE_MESSAGE_SECONDS, as Discord's) their live messages in the server's
    channels sent that many seconds back are deleted too, in the same transaction, as a
    moderator deletes a message, at most `max_deleted` of them (newest first); the
    `member.banned` audit entry records the window and how many. Returns how many were
    deleted.

    Raises: NotFound (SERVER_NOT_FOUND, USER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS,
    ROLE_HIERARCHY); BadRequest (CANNOT_BAN_SELF, VALIDATION_ERROR: the window)."""
    if not 0 <= delete_message_seconds <= MAX_DELETE_MESSAGE_SECONDS:
        raise BadRequest(
            f"delete_message_seconds is 0 to {MAX_DELETE_MESSAGE_SECONDS}",
            code="VALIDATION_ERROR",
            field="delete_message_seconds",
        )
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, need=Permission.BAN_MEMBERS, lock=True)
        if user_id == actor.user_id:
            raise BadRequest("you cannot ban yourself", code="CANNOT_BAN_SELF")
        if await users_q.get_public_user(conn, user_id=user_id) is None:
            raise NotFound("no such user", code="USER_NOT_FOUND")
        target = await q.get_member(conn, server_id=server_id, user_id=user_id)
        check_outranks(access, target)
        await bans_q.insert_ban(
            conn, server_id=server_id, user_id=user_id, banned_by=actor.user_id, reason=reason
        )
        # The member's removal, then their messages' deletion (the channels' rows, then
        # the messages', as an edit takes them), and only then every event of both in
        # one emit_many: the removal emits to channels too (the member's overrides,
        # their voice state), and a channel's stream taken after a higher one's, in a
        # second emit, deadlocked with a writer taking both in the log's lock order.
        events: list[Event] = []
        if target is not None:
            events += (await _removal(conn, user_id, [server_id], "banned", rejoins=True))[1]
        deleted = 0
        changes: dict[str, Any] = {}
        if delete_message_seconds > 0:
            gone = await delete_recent_of_author(
                conn, actor.user_id, server_id, user_id, delete_message_seconds, max_deleted
            )
            events += gone
            deleted = len(gone)
            # How many in each channel: the audit log shows a reader only the count of
            # the channels they see (servers.py, _readable), as it leaves out what
            # happened in the others.
            deleted_in = Counter(str(event.data["channel_id"]) for event in gone)
            changes = {
                "delete_message_seconds": delete_message_seconds,
                "deleted_messages": deleted,
                "deleted_in": dict(deleted_in),
            }
        await emit_many(conn, events)
        await audit(
            conn,
            access,
            "member.banned",
            target_type="user",
            target_id=user_id,
            changes=changes,
            reason=reason,
        )
        return deleted


async def unban_member(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, user_id: UUID, reason: str | None
) -> None:
    """Raises: NotFound (SERVER_NOT_FOUND, BAN_NOT_FOUND); Forbidden (MISSING_PERMISSIONS)."""
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, need=Permission.BAN_MEMBERS, lock=True)
        if not await bans_q.delete_ban(conn, server_id=server_id, user_id=user_id):
            raise NotFound("that user is not banned here", code="BAN_NOT_FOUND")
        await audit(
            conn, access, "member.unbanned", target_type="user", target_id=user_id, reason=reason
        )


async def list_bans(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, *, after: UUID | None, limit: int
) -> list[dict[str, Any]]:
    """A page of the server's bans, by user id, each with the user's public profile.

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS, TIMED_OUT)."""
    await access_server(conn, actor, server_id, need=Permission.BAN_MEMBERS)
    rows = await bans_q.list_bans(conn, server_id=server_id, after=after, limit=limit)
    users = {
        u.id: u for u in await users_q.list_public_users(conn, user_ids=[r.user_id for r in rows])
    }
    return [
        {
            "user": public_profile(users[r.user_id]),
            "reason": r.reason,
            "banned_by": str(r.banned_by) if r.banned_by else None,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
        if r.user_id in users
    ]
