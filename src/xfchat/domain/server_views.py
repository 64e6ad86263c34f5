"""How servers, their channels, roles and members look in answers and events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as q
from xfchat.db.queries import users as users_q
from xfchat.domain import voice
from xfchat.domain.access import permissions_in_channels, server_viewers
from xfchat.domain.event_payloads import (
    ChannelUnreadPayload,
    MemberPayload,
    OverridePayload,
    RolePayload,
    ServerChannelPayload,
    ServerJoinedPayload,
    ServerPayload,
)
from xfchat.domain.events import (
    CHANNEL_UPDATED,
    Event,
    emit_many,
)
from xfchat.domain.permissions import Permission
from xfchat.domain.profile import public_profile
from xfchat.errors import Forbidden

# The overrides a server's channels show, a category's counted again in each channel
# following it (shown there as `category_overrides`): what a server's payload (its GET,
# `ready`, `server.joined`) and a category's override change carry stays near 1 MiB.
MAX_SHOWN_OVERRIDES = 10_000


def server_json(row: q.ServerRow) -> ServerPayload:
    return {
        "id": str(row.id),
        "name": row.name,
        "description": row.description,
        "icon_url": row.icon_url,
        "owner_id": str(row.owner_id),
        "member_count": row.member_count,
        "created_at": row.created_at.isoformat(),
        "search_language": row.search_language,
        "default_notifications": "mentions" if row.default_notifications == "mentions" else "all",
    }


def role_json(row: roles_q.RoleRow) -> RolePayload:
    return {
        "id": str(row.id),
        "server_id": str(row.server_id),
        "name": row.name,
        "permissions": str(row.permissions),
        "position": row.position,
        "color": row.color,
        "hoist": row.hoist,
        "mentionable": row.mentionable,
        "is_default": row.is_default,
    }


def override_json(row: channels_q.OverrideRow) -> OverridePayload:
    target = row.role_id if row.role_id is not None else row.user_id
    return {
        "kind": "role" if row.role_id is not None else "member",
        "id": str(target),
        "allow": str(row.allow),
        "deny": str(row.deny),
    }


async def check_shown_overrides(conn: asyncpg.Connection, server_id: UUID, more: int) -> None:
    """Refuse a change that makes the server's channels show `more` overrides, past
    MAX_SHOWN_OVERRIDES (in the transaction that holds the server's lock).

    Raises: Forbidden (TOO_MANY_OVERRIDES)."""
    if more <= 0:
        return
    shown = await channels_q.count_shown_overrides(conn, server_id=server_id)
    if shown + more > MAX_SHOWN_OVERRIDES:
        raise Forbidden(
            f"a server's channels show at most {MAX_SHOWN_OVERRIDES} overrides, a category's"
            " counted again in each channel following it",
            code="TOO_MANY_OVERRIDES",
        )


def _follows(row: channels_q.ChannelRow) -> UUID | None:
    """The category whose overrides apply to this channel, if any."""
    return row.parent_id if row.permissions_synced else None


def channel_json(
    row: channels_q.ChannelRow, overrides: list[channels_q.OverrideRow]
) -> ServerChannelPayload:
    """`overrides`: at least the channel's own and those of the category it follows."""
    assert row.server_id is not None and row.name is not None
    category = _follows(row)
    return {
        "id": str(row.id),
        "server_id": str(row.server_id),
        "kind": row.kind,
        "name": row.name,
        "topic": row.topic,
        "position": row.position,
        "parent_id": str(row.parent_id) if row.parent_id else None,
        "rate_limit_per_user": row.rate_limit_per_user,
        "user_limit": row.user_limit,
        "permissions_synced": row.permissions_synced,
        "overrides": [override_json(o) for o in overrides if o.channel_id == row.id],
        "category_overrides": [
            override_json(o) for o in overrides if category and o.channel_id == category
        ],
        "created_at": row.created_at.isoformat(),
    }


async def channels_json(
    conn: asyncpg.Connection, rows: list[channels_q.ChannelRow]
) -> list[ServerChannelPayload]:
    ids = {r.id for r in rows} | {c for r in rows if (c := _follows(r))}
    overrides = await channels_q.list_overrides(conn, channel_ids=list(ids))
    return [channel_json(r, overrides) for r in rows]


async def announce_channels(
    conn: asyncpg.Connection, rows: list[channels_q.ChannelRow]
) -> list[ServerChannelPayload]:
    """Tell those who see each of these channels how it looks now (`channel.updated`),
    in the caller's transaction; the payloads."""
    payloads = await channels_json(conn, rows)
    await emit_many(conn, [CHANNEL_UPDATED.to_channel(UUID(p["id"]), p) for p in payloads])
    return payloads


async def channel_updates(
    conn: asyncpg.Connection, rows: list[channels_q.ChannelRow]
) -> list[Event]:
    """`channel.updated` for each of these channels, to emit with others."""
    return [CHANNEL_UPDATED.to_channel(UUID(p["id"]), p) for p in await channels_json(conn, rows)]


async def followers_of(
    conn: asyncpg.Connection, rows: list[channels_q.ChannelRow]
) -> list[channels_q.ChannelRow]:
    """The channels following (synced with) any category among `rows`: one read of
    each of their servers' channels, none without a category."""
    followers: list[channels_q.ChannelRow] = []
    for server_id in {r.server_id for r in rows if r.kind == "category"}:
        assert server_id is not None
        channels = await channels_q.list_server_channels(conn, server_id=server_id)
        followers += followers_among(rows, channels)
    return followers


def followers_among(
    rows: list[channels_q.ChannelRow], channels: list[channels_q.ChannelRow]
) -> list[channels_q.ChannelRow]:
    """followers_of, among `channels` (every channel of the servers of the categories
    among `rows`, read by the caller already)."""
    categories = {r.id for r in rows if r.kind == "category"}
    return [c for c in channels if _follows(c) in categories]


async def overrides_changed(
    conn: asyncpg.Connection,
    rows: list[channels_q.ChannelRow],
    followers: list[channels_q.ChannelRow] | None = None,
) -> list[Event]:
    """`channel.updated` for channels whose overrides changed, and for the channels
    following any category among them (their `category_overrides` changed; read here
    unless the caller has them: `followers_of`). One event a channel: a synced channel
    whose own overrides changed along with its category's is among both, and its one
    `channel.updated` shows both."""
    if followers is None:
        followers = await followers_of(conn, rows)
    once = {r.id: r for r in [*rows, *followers]}
    return await channel_updates(conn, list(once.values()))


async def member_json(conn: asyncpg.Connection, row: q.MemberRow) -> MemberPayload:
    users = await users_q.list_public_users(conn, user_ids=[row.user_id])
    return members_json(row, users[0])


def members_json(row: q.MemberRow, user: users_q.PublicUserRow) -> MemberPayload:
    return {
        "server_id": str(row.server_id),
        "user": public_profile(user),
        "nickname": row.nickname,
        "role_ids": [str(r) for r in row.role_ids],
        "joined_at": row.joined_at.isoformat(),
        "timed_out_until": row.timed_out_until.isoformat() if row.timed_out_until else None,
        "mute": row.mute,
        "deaf": row.deaf,
    }


async def visible_server_channels(
    conn: asyncpg.Connection, server_id: UUID, user_id: UUID
) -> list[channels_q.ChannelRow]:
    """The server's channels this member may see, in display order."""
    rows = await channels_q.list_server_channels(conn, server_id=server_id)
    viewers = await server_viewers(conn, server_id, [r.id for r in rows], [user_id])
    return [r for r in rows if user_id in viewers[r.id]]


def _history_since(
    channel: channels_q.ChannelRow,
    visible: Mapping[UUID, Permission],
    members: Mapping[UUID, q.MemberRow],
) -> datetime | None:
    """From when a text channel's messages count as unread for the member: all of them
    where they may read its history (None), else only those since they joined the
    server (what they received live: older ones are history they may not read)."""
    if Permission.READ_MESSAGE_HISTORY in visible.get(channel.id, Permission(0)):
        return None
    member = members.get(channel.server_id) if channel.server_id is not None else None
    return member.joined_at if member is not None else datetime.max.replace(tzinfo=UTC)


async def revealed_read_states(
    conn: asyncpg.Connection,
    server_id: UUID,
    revealed: Mapping[UUID, list[channels_q.ChannelRow]],
    readers: Mapping[UUID, set[UUID]],
) -> dict[UUID, list[ChannelUnreadPayload]]:
    """Each member's read state in the text channels just revealed to them (`revealed`:
    by member; `readers`: who may read each channel's history now), counted as their
    `ready` would count it: one statement, however many members."""
    pairs = [(u, c) for u, rows in revealed.items() for c in rows if c.kind == "text"]
    if not pairs:
        return {}
    members = {
        m.user_id: m
        for m in await q.list_members_of(
            conn, server_id=server_id, user_ids=sorted({u for u, _ in pairs})
        )
    }
    pairs = [(u, c) for u, c in pairs if u in members]
    place = {u: i for i, u in enumerate(members)}  # (each member's roles sent once)
    rows = await messages_q.list_unreads_of_pairs(
        conn,
        user_ids=[u for u, _ in pairs],
        channel_ids=[c.id for _, c in pairs],
        since=[None if u in readers.get(c.id, ()) else members[u].joined_at for u, c in pairs],
        role_sets=[m.role_ids for m in members.values()],
        role_set=[place[u] for u, _ in pairs],
    )
    found = {(r.user_id, r.channel_id): r for r in rows}
    out: dict[UUID, list[ChannelUnreadPayload]] = {}
    for u, c in pairs:
        if (r := found.get((u, c.id))) is not None:
            out.setdefault(u, []).append(
                {
                    "channel_id": str(c.id),
                    "last_read_seq": r.last_read_seq,
                    "unread": r.unread,
                    "mention_count": r.mention_count,
                }
            )
    return out


async def joined_json(
    conn: asyncpg.Connection, server: q.ServerRow, user_id: UUID
) -> ServerJoinedPayload:
    """A server as one member sees it: with its roles and the channels they may see."""
    rows = await channels_q.list_server_channels(conn, server_id=server.id)
    visible = await permissions_in_channels(conn, user_id, [r.id for r in rows])
    return (await joined_many(conn, [server], user_id, visible))[0]


async def joined_many(
    conn: asyncpg.Connection,
    servers: list[q.ServerRow],
    user_id: UUID,
    visible: Mapping[UUID, Permission],
) -> list[ServerJoinedPayload]:
    """Several servers as one member sees them, of their channels those in `visible`
    (the member's permissions in each channel they may see), with the member's read
    state in each text channel (where they may not read the history, counting only
    what was written since they joined: what they received live), and who is in each
    voice channel: eight statements, whatever the number of servers. A server they
    are no longer a member of is left out."""
    ids = [s.id for s in servers]
    channels = [
        c
        for c in await channels_q.list_channels_of_servers(conn, server_ids=ids)
        if c.id in visible
    ]
    overrides: dict[UUID | None, list[channels_q.OverrideRow]] = {}  # (None: no category)
    followed = {c.id for c in channels} | {p for c in channels if (p := _follows(c))}
    for o in await channels_q.list_overrides(conn, channel_ids=list(followed)):
        overrides.setdefault(o.channel_id, []).append(o)
    roles: dict[UUID, list[RolePayload]] = {}
    for r in await roles_q.list_roles_of_servers(conn, server_ids=ids):
        roles.setdefault(r.server_id, []).append(role_json(r))
    members = {m.server_id: m for m in await q.list_memberships(conn, user_id=user_id)}
    (me,) = await users_q.list_public_users(conn, user_ids=[user_id])
    texts = [c for c in channels if c.kind == "text"]
    unreads = {
        u.channel_id: u
        for u in await messages_q.list_unreads(
            conn,
            user_id=user_id,
            role_ids=[r for m in members.values() for r in m.role_ids],
            channel_ids=[c.id for c in texts],
            since=[_history_since(c, visible, members) for c in texts],
        )
    }
    voices = await voice.states_by_server(conn, ids, set(visible))
    # (by server once: each server's own picked from all of them was servers x channels,
    # 20,000,000 steps for 200 servers of 500 channels)
    by_server: dict[UUID | None, list[channels_q.ChannelRow]] = {}
    for c in channels:
        by_server.setdefault(c.server_id, []).append(c)
    out: list[ServerJoinedPayload] = []
    for server in servers:
        member = members.get(server.id)
        if member is None:
            continue
        mine = by_server.get(server.id, [])
        out.append(
            {
                **server_json(server),
                "channels": [
                    channel_json(c, [*overrides.get(c.id, []), *overrides.get(_follows(c), [])])
                    for c in mine
                ],
                "roles": roles.get(server.id, []),
                "member": members_json(member, me),
                "read_states": [
                    {
                        "channel_id": str(u.channel_id),
                        "last_read_seq": u.last_read_seq,
                        "unread": u.unread,
                        "mention_count": u.mention_count,
                    }
                    for c in mine
                    if (u := unreads.get(c.id)) is not None
                ],
                "voice_states": voices[server.id],
            }
        )
    return out
