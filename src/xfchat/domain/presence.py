"""Presence: online, idle, do-not-disturb or offline, and a custom status.

The custom status (`users.status_text`) is presence, not profile: only those who see
the user's presence see it, and nobody while the user is invisible or offline (the
public profile never carries it).

A user is connected while some live server process holds one of their real-time
connections (SSE or the gateway): each process registers its connected users in
PostgreSQL and touches its own row every few seconds (realtime/presence.py); a process
not seen for `timeout_s` is dead, and its users are offline. While connected, a user
shows the status they chose (`users.status`): online, idle or dnd; invisible shows as
offline to everyone else.

Changes are announced as `presence.updated` signals (not stored: the state on connect
carries the current presences) to the user's own connections, their friends and
everyone who shares a group conversation or a server channel with them; a direct
conversation with someone who is not a friend carries none (anyone may open one).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from uuid import UUID

import asyncpg

from xfchat.db.queries import conversations as conversations_q
from xfchat.db.queries import friends as friends_q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import presence as q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation, voice
from xfchat.domain.access import (
    access_server,
    direct_channels_with_strangers,
    presence_peers_among,
    visible_channels,
)
from xfchat.domain.accounts import Actor, session_ended
from xfchat.domain.event_payloads import PresencePayload
from xfchat.domain.events import PRESENCE_UPDATED, signal_related
from xfchat.errors import BadRequest

STATUSES = ("online", "idle", "dnd", "invisible")
SWEEP_LOCK = int.from_bytes(
    hashlib.sha256(b"xfchat presence sweep").digest()[:8], "big", signed=True
)


def shown(row: q.PresenceRow) -> PresencePayload:
    """A presence as others see it."""
    if not row.connected or row.status == "invisible":
        return {"user_id": str(row.user_id), "status": "offline", "status_text": None}
    return {"user_id": str(row.user_id), "status": row.status, "status_text": row.status_text}


def own(row: q.PresenceRow) -> PresencePayload:
    """A presence as its user sees it: the status they chose (invisible stays
    invisible), connected or not."""
    return {"user_id": str(row.user_id), "status": row.status, "status_text": row.status_text}


async def _lock_user(conn: asyncpg.Connection, user_id: UUID) -> None:
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(b"presence", user_id))


async def shown_now(conn: asyncpg.Connection, user_id: UUID, timeout_s: float) -> PresencePayload:
    """The user's presence as others see it now (what `announce` compares with)."""
    return shown(await _presence(conn, user_id, timeout_s))


async def lock_shown(conn: asyncpg.Connection, user_id: UUID, timeout_s: float) -> PresencePayload:
    """Lock the user's presence until the transaction ends, and read it as others see
    it: what `announce` compares with after the caller changes the user's status or
    custom status (set_presence here, profile.update_profile)."""
    await _lock_user(conn, user_id)
    return await shown_now(conn, user_id, timeout_s)


async def _presence(conn: asyncpg.Connection, user_id: UUID, timeout_s: float) -> q.PresenceRow:
    (row,) = await q.list_presences(conn, user_ids=[user_id], timeout_s=timeout_s)
    return row


async def announce(
    conn: asyncpg.Connection, user_id: UUID, timeout_s: float, before: PresencePayload
) -> None:
    """Tell the user's connections how the user is now, and everyone who shares a
    channel with them too if what they see changed from `before` (an invisible user's
    comings and goings show nothing). In the caller's transaction: it goes out on
    commit."""
    row = await _presence(conn, user_id, timeout_s)
    now = shown(row)
    shared: list[UUID] = []
    if now != before:
        # A direct conversation carries presence only between friends: anyone may open
        # one with anyone (and it stays open after an unfriending or a block), so
        # through it a stranger could follow whoever they like.
        strangers = set(await direct_channels_with_strangers(conn, user_id))
        visible = (await visible_channels(conn, user_id)).values()
        shared = sorted(c.channel_id for c in visible if c.channel_id not in strangers)
    await signal_related(conn, PRESENCE_UPDATED, user_id, shared, now, own(row))


async def connect(
    conn: asyncpg.Connection, process_id: UUID, user_ids: list[UUID], timeout_s: float
) -> None:
    """A process holds a connection of each of these users now; announce those it makes
    connected. One transaction for them all, so that their announcements go out
    together: a connection that hears several gets them in one write (a burst of
    reconnections after a restart is one write per connection, not one per user)."""
    async with conn.transaction():
        before = await _lock_users(conn, user_ids, timeout_s)
        await q.insert_connections(conn, process_id=process_id, user_ids=user_ids)
        for row in before:
            if not row.connected:
                await announce(conn, row.user_id, timeout_s, shown(row))


async def disconnect(
    conn: asyncpg.Connection, process_id: UUID, user_ids: list[UUID], timeout_s: float
) -> None:
    """A process holds no connection of these users any more; announce offline those
    no other process holds one of (in one transaction, as `connect`)."""
    async with conn.transaction():
        before = await _lock_users(conn, user_ids, timeout_s)
        await q.delete_connections(conn, process_id=process_id, user_ids=user_ids)
        after = {
            r.user_id: r
            for r in await q.list_presences(conn, user_ids=user_ids, timeout_s=timeout_s)
        }
        for row in before:
            if row.user_id in after and not after[row.user_id].connected:
                await announce(conn, row.user_id, timeout_s, shown(row))


async def _lock_users(
    conn: asyncpg.Connection, user_ids: list[UUID], timeout_s: float
) -> list[q.PresenceRow]:
    """Lock the presence of these users, in user order (every locker of several goes in
    the same order, so none deadlocks), and read it, in that order."""
    users = sorted(set(user_ids))
    if not users:
        return []
    await locks_q.lock_transaction_all(
        conn, keys=[locks_q.advisory_key(b"presence", u) for u in users]
    )
    rows = {r.user_id: r for r in await q.list_presences(conn, user_ids=users, timeout_s=timeout_s)}
    return [rows[u] for u in users if u in rows]


async def _gone(conn: asyncpg.Connection, users: list[UUID], timeout_s: float) -> None:
    for row in await _lock_users(conn, users, timeout_s):
        if not row.connected:  # (they were, on the process that is gone)
            await announce(conn, row.user_id, timeout_s, shown(replace(row, connected=True)))


async def leave(conn: asyncpg.Connection, process_id: UUID, timeout_s: float) -> None:
    """The process stops: drop the voice states it holds, forget its connections,
    announce whom that leaves offline."""
    async with conn.transaction():
        await voice.drop_process_states(conn, process_id)
        await _gone(conn, await q.delete_process(conn, process_id=process_id), timeout_s)


async def sweep(conn: asyncpg.Connection, timeout_s: float, sweeper: UUID | None = None) -> int:
    """Forget processes not seen for `timeout_s` (crashed), with the voice states they
    held; announce whom that leaves offline. One process sweeps at a time. `sweeper` is
    the sweeping process (see voice.drop_dead_process_states). Returns the users whose
    presence it concerned."""
    async with conn.transaction():
        if not await locks_q.try_lock_transaction(conn, key=SWEEP_LOCK):
            return 0
        await voice.drop_dead_process_states(conn, sweeper, timeout_s)
        users = await q.delete_dead_processes(conn, timeout_s=timeout_s)
        await _gone(conn, users, timeout_s)
        return len(users)


async def related_presences(
    conn: asyncpg.Connection, user_id: UUID, timeout_s: float
) -> list[PresencePayload]:
    """The presences of the user's friends and of the people they share a group
    conversation with who are not offline, as others see them, by user id: what
    `ready` carries, fresh or resumed (a direct conversation with someone who is not a
    friend shows nothing: see `announce`). Bounded by what the user consented to
    (friends) and by MAX_CONVERSATIONS_PER_USER conversations of MAX_PARTICIPANTS;
    only those connected and not invisible come."""
    related = set(await conversations_q.list_conversation_peers(conn, user_id=user_id))
    related.update(await friends_q.list_friend_ids(conn, user_id=user_id))
    rows = await q.list_connected_presences(conn, user_ids=sorted(related), timeout_s=timeout_s)
    return [p for p in (shown(r) for r in rows) if p["status"] != "offline"]


MAX_ASKED = 100


async def presences_among(
    conn: asyncpg.Connection, user_id: UUID, among: list[UUID], timeout_s: float
) -> list[PresencePayload]:
    """Those of `among` (at most MAX_ASKED) whose presence the user may see, who are not
    offline, by user id: friends, people they share a group with, and members of a
    server they are in (as that server's member list shows them). Anyone else left out
    is offline, or not the user's to see: one answer where asking each server the user
    shares would take a request a server.

    Raises: BadRequest (TOO_MANY_IDS)."""
    if len(among) > MAX_ASKED:
        raise BadRequest(
            f"ask for at most {MAX_ASKED} users at once", code="TOO_MANY_IDS", field="user_ids"
        )
    seen = await presence_peers_among(conn, user_id, sorted(set(among)))
    rows = await q.list_connected_presences(conn, user_ids=sorted(seen), timeout_s=timeout_s)
    return [p for p in (shown(r) for r in rows) if p["status"] != "offline"]


SERVER_PRESENCES = 1000


async def list_server_presences(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    timeout_s: float,
    *,
    after: UUID | None,
    limit: int,
) -> list[PresencePayload]:
    """A page of the presences of a server's members who are not offline, as others see
    them (`limit` of them, by user id, after the member `after`): what a member list
    shows before any `presence.updated` arrives.

    Raises: NotFound (SERVER_NOT_FOUND)."""
    await access_server(conn, actor, server_id)
    rows = await servers_q.list_connected_members(
        conn, server_id=server_id, timeout_s=timeout_s, after=after, limit=limit
    )
    return [shown(r) for r in rows]


async def own_presence(conn: asyncpg.Connection, actor: Actor, timeout_s: float) -> PresencePayload:
    return own(await _presence(conn, actor.user_id, timeout_s))


async def presences_now(
    conn: asyncpg.Connection, user_id: UUID, timeout_s: float
) -> tuple[PresencePayload, list[PresencePayload]]:
    """The user's own presence and `related_presences`, as a `ready` carries them."""
    return own(await _presence(conn, user_id, timeout_s)), await related_presences(
        conn, user_id, timeout_s
    )


def _as_asked(
    row: q.PresenceRow, status: str | None, status_text: str | None, clear_status_text: bool
) -> bool:
    """Whether the status and custom status asked for are the user's already."""
    text = None if clear_status_text else (row.status_text if status_text is None else status_text)
    return status in (None, row.status) and text == row.status_text


async def unchanged_presence(
    conn: asyncpg.Connection,
    actor: Actor,
    timeout_s: float,
    *,
    status: str | None,
    status_text: str | None,
    clear_status_text: bool,
) -> PresencePayload | None:
    """The actor's own presence, if a change to these (as sent) would change nothing:
    such a change writes and tells nothing (set_presence judges it too, under the
    lock), so it is not counted in `presence`, as a profile change of nothing is not
    counted in `profile`; None if it would change something."""
    row = await _presence(conn, actor.user_id, timeout_s)
    text = None if status_text is None else status_text.strip()  # (as set_presence trims it)
    return own(row) if _as_asked(row, status, text, clear_status_text) else None


async def set_presence(
    conn: asyncpg.Connection,
    actor: Actor,
    timeout_s: float,
    *,
    status: str | None,
    status_text: str | None,
    clear_status_text: bool,
) -> PresencePayload:
    """Choose a status (online, idle, dnd, invisible) and/or a custom status text; the
    change is announced at once, as presence only (the custom status is not in the
    profile: no user.updated). One that changes nothing writes and tells nothing.

    Raises: BadRequest (INVALID_STATUS, INVALID_STATUS_TEXT); Unauthorized
    (SESSION_REVOKED: the account deleted meanwhile)."""
    if status is not None and status not in STATUSES:
        raise BadRequest(
            f"status is one of {', '.join(STATUSES)}", code="INVALID_STATUS", field="status"
        )
    if status_text is not None:
        status_text = validation.optional_text(
            status_text,
            field="status_text",
            limit=validation.MAX_STATUS_TEXT,
            code="INVALID_STATUS_TEXT",
        )
    async with conn.transaction():
        seen = await lock_shown(conn, actor.user_id, timeout_s)
        held = await _presence(conn, actor.user_id, timeout_s)
        if _as_asked(held, status, status_text, clear_status_text):
            # (was: written again, and `presence.updated` sent to the user's own
            # connections, for nothing)
            if await users_q.list_deleted_user_ids(conn, user_ids=[actor.user_id]):
                # (a scrubbed row is invisible with no custom status: one asking that is
                # refused as update_status refuses any other, not answered with it)
                raise session_ended()
            return own(held)
        if not await q.update_status(
            conn,
            user_id=actor.user_id,
            status=status,
            status_text=status_text,
            clear_status_text=clear_status_text,
        ):
            raise session_ended()  # (deleted since its session was checked)
        await announce(conn, actor.user_id, timeout_s, seen)
        return own(await _presence(conn, actor.user_id, timeout_s))
