"""Voice states: who is in which voice channel (or conversation call), muted or not.

A voice state belongs to one gateway connection (VOICE_STATE_UPDATE, op 4) on one
server process, and dies with it: when the connection ends, when its process stops,
and when the other processes sweep a crashed one (realtime/presence.py), each time
announced like any other change. A user is in at most one channel at a time: joining
another leaves the first (one event each). Joining a server's voice channel needs
CONNECT there (a timed-out member has none); a conversation's call needs taking part
(and, in a direct conversation, that it is not closed to you: a block, or the other
takes messages from friends only; a call ends for whoever it closes to). A channel holds
at most its `user_limit` (MOVE_MEMBERS may exceed it) and never more than MESH_LIMIT
people: media flows peer to peer, every member to every other (the README says how an
SFU would take over past it).

Every change is `voice.state_updated` on the channel's stream, so exactly those who
may see the channel hear of it, in order with everything else, live and on a resume.
Server mute and deafen are the member's (server_members), copied into their state;
`suppress` marks a member who lacks SPEAK in the channel, set on joining and moving and
again when a change of permissions flips it (`resuppress`, from domain/visibility.py's
settle); clients treat it as a server mute. Moderators set mute and deafen, move and disconnect members in domain/voice_moderation.py. The
signalling between the people of a channel is domain/voice_signals.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import voice as q
from xfchat.domain.access import access_changed_many, access_channel, in_voice_of_server
from xfchat.domain.accounts import Actor, require_live_session
from xfchat.domain.event_payloads import (
    VoiceStatePayload,
)
from xfchat.domain.events import (
    VOICE_STATE_UPDATED,
    Event,
    emit_in_order,
)
from xfchat.domain.permissions import Permission
from xfchat.errors import BadRequest, Forbidden

MESH_LIMIT = 8  # people per channel while every peer sends its media to every other
VOICE_KINDS = frozenset({"voice", "direct", "group"})  # channels that hold voice


@dataclass(frozen=True)
class Holder:
    """The gateway connection a voice state belongs to, and its server process."""

    process_id: UUID
    connection_id: UUID


@dataclass(frozen=True)
class Joined:
    """A connection that now holds a voice state in a channel it did not before."""

    state: VoiceStatePayload
    voice_states: list[VoiceStatePayload]  # everyone in the channel now, in join order


def state_json(row: q.VoiceStateRow) -> VoiceStatePayload:
    return {
        "user_id": str(row.user_id),
        "channel_id": str(row.channel_id),
        "server_id": str(row.server_id) if row.server_id else None,
        "connection_id": str(row.connection_id),
        "self_mute": row.self_mute,
        "self_deaf": row.self_deaf,
        "self_video": row.self_video,
        "server_mute": row.server_mute,
        "server_deaf": row.server_deaf,
        "suppress": row.suppress,
        "joined_at": row.joined_at.isoformat(),
    }


def updates(
    left: Iterable[q.VoiceStateRow] = (), now: Iterable[q.VoiceStateRow] = ()
) -> list[Event]:
    """`voice.state_updated` on each channel's stream: those who left it, and the new
    state of those in it."""
    events = [
        VOICE_STATE_UPDATED.to_channel(r.channel_id, {**state_json(r), "left": True}) for r in left
    ]
    events += [
        VOICE_STATE_UPDATED.to_channel(r.channel_id, {**state_json(r), "left": False}) for r in now
    ]
    return events


async def announce(
    conn: asyncpg.Connection,
    *,
    left: Iterable[q.VoiceStateRow] = (),
    now: Iterable[q.VoiceStateRow] = (),
) -> None:
    """`updates`, emitted in the caller's transaction, in that order: a move's leave
    always comes before its join in the log (whatever the channels' ids), so a client
    applying them in order ends with the user in the new channel."""
    await emit_in_order(conn, updates(left, now))


async def lock_user(conn: asyncpg.Connection, user_id: UUID) -> None:
    """One change of a user's voice state at a time (two tabs joining at once)."""
    digest = hashlib.sha256(b"voice" + user_id.bytes).digest()
    await locks_q.lock_transaction(conn, key=int.from_bytes(digest[:8], "big", signed=True))


async def _lock_server_of(conn: asyncpg.Connection, channel_id: UUID | None) -> None:
    """Share-lock the server of a channel (first of all): a join is then before or after
    any change of that server (which locks it), never among it. So the two never take the
    event log's channel streams in opposite orders."""
    channel = (
        None if channel_id is None else await channels_q.get_channel(conn, channel_id=channel_id)
    )
    if channel is not None and channel.server_id is not None:
        await servers_q.share_lock_servers(conn, server_ids=[channel.server_id])


def _join_need(channel: channels_q.ChannelRow) -> Permission:
    if channel.kind == "voice":
        return Permission.CONNECT
    if channel.kind == "direct":
        return Permission.SEND_MESSAGES  # which a block takes away
    return Permission.VIEW_CHANNEL  # a group's participants; other kinds are refused after


def suppressed(channel: channels_q.ChannelRow, permissions: Permission) -> bool:
    """Whether a state in this channel is suppressed: a server's voice channel where the
    member lacks SPEAK (a conversation's call has no such permission)."""
    return channel.server_id is not None and Permission.SPEAK not in permissions


async def resuppress(conn: asyncpg.Connection, server_id: UUID) -> list[Event]:
    """After a change of the server's roles, overrides or channels (in its transaction,
    under the server's lock): set `suppress` anew for those in its voice channels whose
    SPEAK there it flipped, and return their `voice.state_updated` for the change to
    emit. Reads only who is in voice (one statement), whatever the member count."""
    flipped = [s for s in await in_voice_of_server(conn, server_id) if s.speaks == s.suppressed]
    if not flipped:
        return []
    rows = await q.update_voice_suppress(
        conn,
        user_ids=[s.user_id for s in flipped],
        channel_ids=[s.channel_id for s in flipped],
        suppress=[not s.speaks for s in flipped],
    )
    return updates(now=rows)


def _holds(state: q.VoiceStateRow | None, channel_id: UUID, holder: Holder) -> bool:
    """Whether `holder` holds this voice state, in this channel."""
    return (
        state is not None
        and state.channel_id == channel_id
        and state.connection_id == holder.connection_id
    )


def not_in_voice(who: str = "they are") -> BadRequest:
    return BadRequest(f"{who} not in a voice channel", code="NOT_IN_VOICE")


def _voice_channel(channel: channels_q.ChannelRow) -> None:
    if channel.kind not in VOICE_KINDS:
        raise BadRequest(
            "only voice channels and conversations hold voice",
            code="NOT_A_VOICE_CHANNEL",
            field="channel_id",
        )


async def check_room(
    conn: asyncpg.Connection, channel: channels_q.ChannelRow, bypass_limit: bool
) -> None:
    """Refuse a newcomer to a full channel: MESH_LIMIT always, the channel's own user
    limit (0 or none: no limit) unless `bypass_limit` (MOVE_MEMBERS)."""
    count = await q.count_voice_states(conn, channel_id=channel.id)
    if count >= MESH_LIMIT:
        raise Forbidden(f"a voice channel holds at most {MESH_LIMIT} people", code="CHANNEL_FULL")
    limit = channel.user_limit if channel.kind == "voice" else None
    if limit and count >= limit and not bypass_limit:
        raise Forbidden(f"this voice channel holds at most {limit} people", code="CHANNEL_FULL")


async def _server_flags(
    conn: asyncpg.Connection, server_id: UUID | None, user_id: UUID
) -> servers_q.VoiceFlags:
    if server_id is None:
        return servers_q.VoiceFlags(mute=False, deaf=False)
    flags = await servers_q.get_member_voice_flags(conn, server_id=server_id, user_id=user_id)
    return flags or servers_q.VoiceFlags(mute=False, deaf=False)


def same(a: q.VoiceStateRow, b: q.VoiceStateRow) -> bool:
    return state_json(a) == state_json(b)


async def update_own_voice_state(
    conn: asyncpg.Connection,
    actor: Actor,
    holder: Holder,
    *,
    channel_id: UUID | None,
    self_mute: bool,
    self_deaf: bool,
    self_video: bool,
) -> Joined | None:
    """Join a voice channel or a conversation's call (leaving the one you were in), set
    your own mute, deafen and video there, or leave (`channel_id` None: the state this
    connection holds, if any). A join from another connection of yours takes the state
    over. Setting the flags of the state this connection holds needs only that you still
    see the channel (no CONNECT). Returns what the connection needs to start calling
    when it now holds a state in a channel it did not hold before; None otherwise.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS, TIMED_OUT,
    CANNOT_MESSAGE_USER, CHANNEL_FULL); BadRequest (NOT_A_VOICE_CHANNEL); Unauthorized
    (SESSION_REVOKED: the actor's session ended; leaving still works)."""
    async with conn.transaction():
        await _lock_server_of(conn, channel_id)
        await lock_user(conn, actor.user_id)
        if channel_id is None:
            gone = await q.delete_voice_state(
                conn, user_id=actor.user_id, connection_id=holder.connection_id
            )
            await announce(conn, left=[gone] if gone else [])
            return None
        # A gateway connection is authenticated once and outlives its session (expired:
        # never refreshed); a state it wrote would name an ended session, and one the
        # retention job has deleted failed the foreign key as the database's fault.
        await require_live_session(conn, actor)
        # Changing your own flags in the state this connection holds is no join: it
        # needs only to see the channel (a state ends with whatever would refuse a join
        # but CONNECT, which is for joining). The peek is checked again under the lock.
        peek = await q.get_voice_state(conn, user_id=actor.user_id)
        flags_only = _holds(peek, channel_id, holder)
        need = Permission.VIEW_CHANNEL if flags_only else _join_need
        # The channel's row stays locked: joins of one channel happen one at a time (its
        # limit holds), and a change of who may see it waits for this one.
        access = await access_channel(conn, actor, channel_id, need=need, lock=True)
        _voice_channel(access.channel)
        before = await q.get_voice_state(conn, user_id=actor.user_id, lock=True)
        if flags_only and not _holds(before, channel_id, holder):  # it ended meanwhile
            access = await access_channel(conn, actor, channel_id, need=_join_need, lock=True)
        moving = before is None or before.channel_id != channel_id
        if moving:
            await check_room(conn, access.channel, access.can(Permission.MOVE_MEMBERS))
        flags = await _server_flags(conn, access.channel.server_id, actor.user_id)
        row = await q.upsert_voice_state(
            conn,
            user_id=actor.user_id,
            channel_id=channel_id,
            server_id=access.channel.server_id,
            session_id=actor.session_id,
            process_id=holder.process_id,
            connection_id=holder.connection_id,
            self_mute=self_mute,
            self_deaf=self_deaf,
            self_video=self_video,
            server_mute=flags.mute,
            server_deaf=flags.deaf,
            suppress=suppressed(access.channel, access.permissions),
        )
        left = [before] if before is not None and moving else []
        changed = before is None or moving or not same(before, row)
        await announce(conn, left=left, now=[row] if changed else [])
        if not (moving or before is None or before.connection_id != holder.connection_id):
            return None
        present = await q.list_voice_states(conn, channel_ids=[channel_id])
        return Joined(state_json(row), [state_json(r) for r in present])


async def list_voice_states(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID
) -> list[VoiceStatePayload]:
    """Who is in a voice channel or a conversation's call, in the order they joined.

    Raises: NotFound (CHANNEL_NOT_FOUND); BadRequest (NOT_A_VOICE_CHANNEL)."""
    found = await access_channel(conn, actor, channel_id)
    _voice_channel(found.channel)
    return [state_json(r) for r in await q.list_voice_states(conn, channel_ids=[channel_id])]


async def states_by_server(
    conn: asyncpg.Connection, server_ids: list[UUID], visible: set[UUID]
) -> dict[UUID, list[VoiceStatePayload]]:
    """Who is in the voice channels of these servers, of those channels in `visible`."""
    out: dict[UUID, list[VoiceStatePayload]] = {s: [] for s in server_ids}
    for row in await q.list_voice_states_of_servers(conn, server_ids=server_ids):
        if row.channel_id in visible and row.server_id is not None:
            out[row.server_id].append(state_json(row))
    return out


async def states_in(conn: asyncpg.Connection, channel_ids: list[UUID]) -> list[VoiceStatePayload]:
    """Who is in these channels' calls (conversations)."""
    return [state_json(r) for r in await q.list_voice_states(conn, channel_ids=channel_ids)]


# -- states that end with what they depend on
#
# Inside a change that ends states (a member leaves, loses sight of a channel, ...):
# the states are dropped at once and the events returned, for the change to emit with
# its own in one statement (the log's lock order: users, servers, channels). On their
# own (a connection or a process ends): the servers concerned are share-locked first,
# then the states still held as they were read are dropped and announced.


async def end_member_state(
    conn: asyncpg.Connection, server_ids: list[UUID], user_id: UUID
) -> list[Event]:
    """The member left these servers, was kicked, banned or timed out."""
    return updates(await q.delete_member_voice_state(conn, server_ids=server_ids, user_id=user_id))


async def end_states_in(
    conn: asyncpg.Connection, channels_of: dict[UUID, list[UUID]]
) -> list[Event]:
    """These users (key) leave these channels (value), if they are in them: they may no
    longer see them (a change of roles, overrides or categories; leaving a
    conversation)."""
    pairs = [(u, c) for u, channels in channels_of.items() for c in channels]
    if not pairs:
        return []
    return updates(
        await q.delete_voice_states_in(
            conn, user_ids=[u for u, _ in pairs], channel_ids=[c for _, c in pairs]
        )
    )


async def direct_access_changed(conn: asyncpg.Connection, channel_ids: list[UUID]) -> list[Event]:
    """Who may write in these direct conversations changed (a block or its end, an
    unfriending, a choice of whom to take messages from), in the caller's transaction,
    after the change: sends under way check again (access_changed), and a call in one
    closed to either of its people ends for both (the events are returned, as above):
    one left in it would tell the other a choice from a block."""
    if not channel_ids:
        return []
    await access_changed_many(conn, channel_ids)
    return updates(await q.delete_closed_direct_voice_states(conn, channel_ids=channel_ids))


async def _drop_held(conn: asyncpg.Connection, rows: list[q.VoiceStateRow]) -> int:
    if not rows:
        return 0
    servers = sorted({r.server_id for r in rows if r.server_id is not None})
    if servers:
        await servers_q.share_lock_servers(conn, server_ids=servers)
    gone = await q.delete_held_voice_states(
        conn, user_ids=[r.user_id for r in rows], connection_ids=[r.connection_id for r in rows]
    )
    await announce(conn, left=gone)
    return len(gone)


async def drop_connection_state(conn: asyncpg.Connection, connection_id: UUID) -> None:
    """The gateway connection ended."""
    async with conn.transaction():
        await _drop_held(
            conn, await q.list_connection_voice_states(conn, connection_id=connection_id)
        )


async def drop_process_states(conn: asyncpg.Connection, process_id: UUID) -> None:
    """The process stops (in its presence retraction's transaction)."""
    await _drop_held(conn, await q.list_process_voice_states(conn, process_id=process_id))


async def drop_dead_process_states(
    conn: asyncpg.Connection, sweeper: UUID | None, timeout_s: float
) -> None:
    """The sweep of crashed processes (in its transaction, before their presence rows
    go): their voice states go too."""
    if sweeper is not None:
        rows = await q.list_dead_process_voice_states(conn, sweeper=sweeper, timeout_s=timeout_s)
        await _drop_held(conn, rows)


async def drop_orphaned_states(
    conn: asyncpg.Connection, process_id: UUID, live: list[UUID], grace_s: float
) -> int:
    """This process's states whose connection ended without its state being dropped (a
    database error then): drop them now. Returns how many."""
    async with conn.transaction():
        rows = await q.list_orphaned_voice_states(
            conn, process_id=process_id, live=live, grace_s=grace_s
        )
        return await _drop_held(conn, rows)
