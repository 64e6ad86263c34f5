"""A server's channels: text, voice and category; made, changed, reordered, deleted
(MANAGE_CHANNELS). Their messages use the same API as conversations' (domain/messages*).

Who sees a new channel is told (`channel.revealed`, reason "created"); a deleted one
is hidden from those who saw it ("deleted"); a change of its category or of whether it
follows the category's overrides may reveal or hide it ("permissions").
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as q
from xfchat.domain.access import (
    ServerAccess,
    access_changed,
    access_channel,
    access_server,
    channel_not_found,
    may_change_overrides,
    override_bits,
    server_viewers,
)
from xfchat.domain.accounts import Actor
from xfchat.domain.audit_diff import field_diff, row_diff
from xfchat.domain.category_overrides import Copy, keep_category_overrides, plan_category_overrides
from xfchat.domain.conversations import ConversationView, get_conversation
from xfchat.domain.event_payloads import ServerChannelPayload
from xfchat.domain.messages_purge import purge_channels
from xfchat.domain.permissions import Permission
from xfchat.domain.server_views import (
    announce_channels,
    channels_json,
    check_shown_overrides,
    override_json,
    visible_server_channels,
)
from xfchat.domain.servers import audit, text_field
from xfchat.domain.visibility import settle, watch
from xfchat.errors import BadRequest, Conflict, Forbidden, NotFound

MAX_CHANNELS = 500
KINDS = ("text", "voice", "category")
MAX_SLOWMODE = 21600
MAX_USER_LIMIT = 99
MAX_POSITION = 100_000


def _check(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a create or update, checked (only those present)."""
    out: dict[str, Any] = {}
    if "name" in fields:
        out["name"] = text_field(fields["name"], "name", 100, "INVALID_CHANNEL_NAME", name=True)
        if out["name"] is None:
            raise BadRequest("a channel needs a name", code="INVALID_CHANNEL_NAME", field="name")
    if "topic" in fields:
        out["topic"] = text_field(fields["topic"], "topic", 1024, "INVALID_TOPIC", least=0) or None
    for field, most, kinds in (
        ("rate_limit_per_user", MAX_SLOWMODE, ("text",)),
        ("user_limit", MAX_USER_LIMIT, ("voice",)),
        ("position", MAX_POSITION, KINDS),
    ):
        value = fields.get(field)
        if value is None:
            if field in fields and field != "user_limit":
                raise BadRequest(f"{field} is a number", code="VALIDATION_ERROR", field=field)
            if field in fields:
                out[field] = None
            continue
        if kind not in kinds:
            raise BadRequest(
                f"{field} is for {' and '.join(kinds)} channels",
                code="VALIDATION_ERROR",
                field=field,
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise BadRequest(f"{field} is 0 to {most}", code="VALIDATION_ERROR", field=field)
        out[field] = value
    if "parent_id" in fields:
        out["parent_id"] = fields["parent_id"]
    if fields.get("permissions_synced") is not None:
        out["permissions_synced"] = bool(fields["permissions_synced"])
    return out


async def _check_parent(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, kind: str, parent_id: UUID | None
) -> None:
    """A parent is a category of this server that the actor sees (one they do not see
    gets the same answer as none at all)."""
    if parent_id is None:
        return
    if kind == "category":
        raise BadRequest("categories do not nest", code="INVALID_PARENT", field="parent_id")
    rows = await q.list_server_channels(conn, server_id=server_id)
    seen = await server_viewers(conn, server_id, [parent_id], [actor.user_id])
    is_category = any(r.id == parent_id and r.kind == "category" for r in rows)
    if not is_category or actor.user_id not in seen[parent_id]:
        raise BadRequest(
            "parent_id is a category of this server", code="INVALID_PARENT", field="parent_id"
        )


async def _next_position(conn: asyncpg.Connection, actor: Actor, server_id: UUID) -> int:
    """After the last channel the actor sees (not the count of all: that would tell how
    many they do not see)."""
    rows = await q.list_server_channels(conn, server_id=server_id)
    seen = await server_viewers(conn, server_id, [r.id for r in rows], [actor.user_id])
    return max((r.position for r in rows if actor.user_id in seen[r.id]), default=-1) + 1


async def _payload(conn: asyncpg.Connection, row: q.ChannelRow) -> ServerChannelPayload:
    return (await channels_json(conn, [row]))[0]


class ConversationChannelPayload(ConversationView):
    """A conversation looked up as a channel: its view, and no server."""

    server_id: None


async def get_channel(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID
) -> ServerChannelPayload | ConversationChannelPayload:
    """Any channel the actor may see, by id: a server channel as the server shows it to
    them, a conversation as its list does (with `server_id` null).

    Raises: NotFound (CHANNEL_NOT_FOUND, as every channel read: for one that does not
    exist and for one they may not see alike)."""
    found = await access_channel(conn, actor, channel_id)
    if found.channel.server_id is not None:
        return await _payload(conn, found.channel)
    try:
        view = await get_conversation(conn, actor, channel_id)
    except NotFound:  # (left a moment ago)
        raise channel_not_found() from None
    return {**view, "server_id": None}


async def create_channel(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    *,
    kind: str,
    fields: dict[str, Any],
    reason: str | None,
) -> ServerChannelPayload:
    """A new channel at the end of the list (or at `position`), for those with
    MANAGE_CHANNELS where it goes (the server, or its category: `_may_place`). In a
    category it follows the category's overrides unless `permissions_synced` is false.

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS,
    TOO_MANY_CHANNELS, TOO_MANY_OVERRIDES); BadRequest (INVALID_CHANNEL_KIND, INVALID_CHANNEL_NAME,
    INVALID_PARENT, VALIDATION_ERROR)."""
    if kind not in KINDS:
        raise BadRequest(
            "kind is text, voice or category", code="INVALID_CHANNEL_KIND", field="kind"
        )
    values = _check(kind, {"name": None, **fields})
    async with conn.transaction():
        access = await access_server(conn, actor, server_id, lock=True)
        parent = values.get("parent_id")
        synced = parent is not None and bool(values.get("permissions_synced", True))
        await _may_place(conn, actor, access, kind, parent, synced=synced)
        count = await q.count_server_channels(conn, server_id=server_id)
        if count >= MAX_CHANNELS:
            raise Forbidden(
                f"a server has at most {MAX_CHANNELS} channels", code="TOO_MANY_CHANNELS"
            )
        seen = await watch(conn, server_id, channel_ids=[])
        row = await q.insert_channel(
            conn,
            kind=kind,
            server_id=server_id,
            name=values["name"],
            topic=values.get("topic"),
            position=values["position"]
            if "position" in values
            else await _next_position(conn, actor, server_id),
            parent_id=parent,
            rate_limit_per_user=values.get("rate_limit_per_user") or 0,
            user_limit=values.get("user_limit"),
        )
        if parent is not None and synced:
            shown = len(await q.list_overrides(conn, channel_ids=[parent]))
            await check_shown_overrides(conn, server_id, shown)  # (the category's, again)
            updated = await q.update_channel(conn, channel_id=row.id, permissions_synced=True)
            assert updated is not None
            row = updated
        await settle(conn, seen, "created", new_channel_ids=[row.id])
        await audit(
            conn,
            access,
            "channel.created",
            target_type="channel",
            target_id=row.id,
            changes={"kind": kind, **_plain(values)},
            reason=reason,
        )
        return await _payload(conn, row)


async def _may_place(
    conn: asyncpg.Connection,
    actor: Actor,
    access: ServerAccess,
    kind: str,
    parent: UUID | None,
    *,
    synced: bool,
) -> None:
    """May the actor put a new channel (or move one) where `parent` says: MANAGE_CHANNELS
    where it lands, as Discord judges it: in the category, with its overrides (so a
    category's override may grant it or take it away), or server-wide for none. One that
    lands in a category without following its overrides is an override change, as
    unsyncing one is: MANAGE_ROLES, and every permission they allow or deny held in the
    category (else a manager of one category makes channels free of its denials).

    Raises: BadRequest (INVALID_PARENT: also a category the actor cannot see); Forbidden
    (MISSING_PERMISSIONS, TIMED_OUT)."""
    if parent is None:
        await access_server(conn, actor, access.facts.server_id, need=Permission.MANAGE_CHANNELS)
        return
    await _check_parent(conn, actor, access.facts.server_id, kind, parent)
    try:
        await access_channel(conn, actor, parent, need=Permission.MANAGE_CHANNELS)
    except Forbidden as refused:
        if refused.code == "MISSING_PERMISSIONS":  # (it said "in this channel": which?)
            refused.message = f"you need {refused.extra['missing']} in the category it goes in"
        raise
    if not synced:
        bits = override_bits(await q.list_overrides(conn, channel_ids=[parent]))
        if bits:
            await access_server(conn, actor, access.facts.server_id, need=Permission.MANAGE_ROLES)
            await may_change_overrides(conn, actor, [parent], bits)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, UUID) else v for k, v in values.items()}


async def _managed(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID
) -> tuple[q.ChannelRow, ServerAccess]:
    found = await access_channel(conn, actor, channel_id)
    server_id = found.channel.server_id
    if server_id is None:
        raise BadRequest(
            "conversations are changed through /api/conversations", code="NOT_A_SERVER_CHANNEL"
        )
    access = await access_server(conn, actor, server_id, lock=True)
    found = await access_channel(conn, actor, channel_id, need=Permission.MANAGE_CHANNELS)
    return found.channel, access


async def update_channel(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    *,
    fields: dict[str, Any],
    reason: str | None,
) -> ServerChannelPayload:
    """Change a channel's name, topic, position, category, slowmode, voice user limit or
    whether it follows its category's overrides (MANAGE_CHANNELS in it, and where a new
    category puts it; MANAGE_ROLES to change which overrides apply). A change of
    nothing (no field, or each as it is) answers the channel and writes and tells nothing.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS, TOO_MANY_OVERRIDES); BadRequest."""
    async with conn.transaction():
        channel, access = await _managed(conn, actor, channel_id)
        assert channel.server_id is not None
        values = _check(channel.kind, fields)
        # (A field sent back as it is changes nothing: moving the channel is what needs
        # MANAGE_ROLES, not a form that sends its category and sync back unchanged.)
        values = {k: v for k, v in values.items() if getattr(channel, k) != v}
        if not values:
            return await _payload(conn, channel)  # changes nothing: none written, none told
        if "parent_id" in values:
            # MANAGE_CHANNELS in the channel (above) and where it lands, and, landing there
            # without following the category's overrides, what making it so asks (else an
            # uncategorised channel moved in did that with MANAGE_ROLES alone). (What a
            # change of which overrides apply asks of the channel is judged below.)
            synced = values.get("permissions_synced", channel.permissions_synced)
            await _may_place(
                conn, actor, access, channel.kind, values["parent_id"], synced=bool(synced)
            )
        moves = "parent_id" in values or "permissions_synced" in values
        if moves:
            # Which overrides apply changes: as much a permission change as editing them.
            await access_server(conn, actor, channel.server_id, need=Permission.MANAGE_ROLES)
            parent = values["parent_id"] if "parent_id" in values else channel.parent_id
            synced = values.get("permissions_synced", channel.permissions_synced)
            before = channel.parent_id if channel.permissions_synced else None
            after = parent if synced else None
            layers = [] if before == after else [c for c in (before, after) if c is not None]
            layered = await q.list_overrides(conn, channel_ids=layers)
            await may_change_overrides(conn, actor, [channel_id], override_bits(layered))
            gained = sum(o.channel_id == after for o in layered)
            await check_shown_overrides(conn, channel.server_id, gained - (len(layered) - gained))
        seen = await watch(conn, channel.server_id, channel_ids=[channel_id]) if moves else None
        row = await q.update_channel(
            conn,
            channel_id=channel_id,
            name=values.get("name"),
            topic=values.get("topic"),
            clear_topic="topic" in values and values["topic"] is None,
            position=values.get("position"),
            parent_id=values.get("parent_id"),
            clear_parent="parent_id" in values and values["parent_id"] is None,
            rate_limit_per_user=values.get("rate_limit_per_user"),
            user_limit=values.get("user_limit"),
            clear_user_limit="user_limit" in values and values["user_limit"] is None,
            permissions_synced=values.get("permissions_synced"),
        )
        assert row is not None
        if seen is not None:
            await settle(conn, seen, "permissions")
        elif "rate_limit_per_user" in values:
            await access_changed(conn, channel_id)  # sends in flight see the new slowmode
        (payload,) = await announce_channels(conn, [row])
        await audit(
            conn,
            access,
            "channel.updated",
            target_type="channel",
            target_id=channel_id,
            changes=_plain(values),
            reason=reason,
            diff=row_diff(channel, row, values),  # (`channel` read under the lock)
        )
        return payload


async def delete_channel(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, reason: str | None
) -> None:
    """Delete a channel (its messages are purged after: domain/messages_purge.py); the
    channels of a deleted category stay, uncategorised, those synced with it keeping a
    copy of its overrides as their own (domain/category_overrides.py): nobody's
    permissions in them change, so MANAGE_CHANNELS in the category is all it asks.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS,
    TOO_MANY_OVERRIDES, with `channel_ids` for a channel's own limit); Conflict
    (CATEGORY_OVERRIDES_CONFLICT, with `channel_ids`): those of the channels at fault
    that the actor may see."""
    async with conn.transaction():
        channel, access = await _managed(conn, actor, channel_id)
        assert channel.server_id is not None
        rows = await q.list_server_channels(conn, server_id=channel.server_id)
        children = [r.id for r in rows if r.parent_id == channel_id]
        copy: Copy | None = None
        if channel.kind == "category":
            synced = [r for r in rows if r.parent_id == channel_id and r.permissions_synced]
            # (checked before who sees what is read for everyone: a refusal needs only
            # what its actor sees)
            copy = await _planned_copy(conn, actor, channel, synced)
        # Who sees them, read before anything is written (the copy included).
        seen = await watch(conn, channel.server_id, channel_ids=[channel_id, *children])
        kept: dict[str, Any] = {}
        if copy is not None:
            await keep_category_overrides(conn, copy)
            if copy.channel_ids:
                kept = {
                    "overrides_kept_in": [str(c) for c in copy.channel_ids],
                    "overrides": [override_json(o) for o in copy.overrides],
                }
        # Its voice states go with it (ON DELETE CASCADE): `channel.hidden` says so.
        await purge_channels(conn, [channel_id])
        await q.delete_channel(conn, channel_id=channel_id)
        await settle(conn, seen, "deleted")
        moved = [
            r
            for r in await q.list_server_channels(conn, server_id=channel.server_id)
            if r.id in children
        ]  # uncategorised now: tell those who see them
        await announce_channels(conn, moved)
        await audit(
            conn,
            access,
            "channel.deleted",
            target_type="channel",
            target_id=channel_id,
            changes={"name": channel.name, "kind": channel.kind, **kept},
            reason=reason,
        )


async def _planned_copy(
    conn: asyncpg.Connection, actor: Actor, category: q.ChannelRow, synced: list[q.ChannelRow]
) -> Copy:
    """plan_category_overrides; a refusal naming channels names only those of them the
    actor may see (a client had only "a channel", among up to 500): one kept from them
    is not named (its id would tell them it is there). Asked of the actor alone, in
    one read for them all."""
    try:
        return await plan_category_overrides(conn, category, synced)
    except (Conflict, Forbidden) as refused:
        named = refused.extra.get("channel_ids")
        if named:
            assert category.server_id is not None
            ids = [UUID(c) for c in named]
            mine = await watch(conn, category.server_id, channel_ids=ids, user_ids=[actor.user_id])
            refused.extra["channel_ids"] = [
                c for c in named if actor.user_id in mine.viewers.get(UUID(c), ())
            ]
        raise


async def reorder_channels(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    positions: dict[UUID, int],
    reason: str | None,
) -> list[ServerChannelPayload]:
    """Set several channels' positions in one call (MANAGE_CHANNELS). Returns the
    channels the actor sees, in their new order. Each where it is already (or none
    given): nothing written, audited or told.

    Raises: NotFound (SERVER_NOT_FOUND, CHANNEL_NOT_FOUND); Forbidden; BadRequest."""
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_CHANNELS, lock=True
        )
        shown = await visible_server_channels(conn, server_id, actor.user_id)
        was = {c.id: c.position for c in shown}
        visible = set(was)
        for channel_id, position in positions.items():
            if channel_id not in visible:
                raise channel_not_found()
            if not 0 <= position <= MAX_POSITION:
                raise BadRequest(f"positions are 0 to {MAX_POSITION}", code="INVALID_POSITION")
        diff = field_diff(
            {str(k): was[k] for k in positions}, {str(k): v for k, v in positions.items()}
        )
        if not diff:  # each where it is (or none given): none written, audited or told
            return await channels_json(conn, shown)
        rows = await q.update_channel_positions(
            conn,
            server_id=server_id,
            channel_ids=list(positions),
            positions=list(positions.values()),
        )
        await announce_channels(conn, rows)
        await audit(
            conn,
            access,
            "channel.reordered",
            changes={str(k): v for k, v in positions.items()},
            reason=reason,
            diff=diff,
        )
        return await channels_json(
            conn, await visible_server_channels(conn, server_id, actor.user_id)
        )
