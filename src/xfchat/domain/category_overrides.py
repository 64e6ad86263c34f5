"""A deleted category's overrides are kept by the channels synced with it: each gets a
copy of them as its own and stops following the category, in the deletion's
transaction, so nobody's permissions in those channels change (as Discord keeps a synced
channel's overwrites when its category goes). Without it, deleting a private category
would open each of its channels to the whole server.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as servers_q
from xfchat.domain.roles import MAX_OVERRIDES, MAX_SERVER_OVERRIDES
from xfchat.errors import Conflict, Forbidden

Target = tuple[UUID, UUID | None, UUID | None]  # channel, role, member


def merged(
    category: list[q.OverrideRow], own: list[q.OverrideRow], channel_id: UUID
) -> dict[Target, tuple[int, int]]:
    """The overrides a channel synced with a category gets of the category's (no I/O):
    for each role or member the category has one for, the category's bits where the
    channel's own override for the same role or member sets none, its own where it does
    (its own layer applied after the category's, bit by bit). Only those that change."""
    mine = {(o.channel_id, o.role_id, o.user_id): (o.allow, o.deny) for o in own}
    out: dict[Target, tuple[int, int]] = {}
    for o in category:
        target = (channel_id, o.role_id, o.user_id)
        allow, deny = mine.get(target, (0, 0))
        kept = allow | deny
        new = ((o.allow & ~kept) | allow, (o.deny & ~kept) | deny)
        if new != (allow, deny):
            out[target] = new
    return out


_EVERYONE, _ROLE, _MEMBER = 0, 1, 2  # the order of the layers (compute_permissions 4-6)


def crossed(
    category: list[q.OverrideRow], own: list[q.OverrideRow], channel_id: UUID, everyone: UUID
) -> int:
    """The bits whose copy (`merged`) could change what someone holds in the channel,
    whoever they are and whatever roles they hold now or later (no I/O); 0 if none.

    Before, the category's layers (@everyone, roles, member) come whole before the
    channel's; after, each target's are one. A bit the copy takes from the category for
    a target (the channel's own override for it does not set that bit) moves after
    every channel override of an earlier layer that sets it (a channel @everyone allow
    then loses to a category role deny), and joins the union of the roles' layer beside
    the channel's role overrides that set it (a category role allow then beats another
    role's channel deny for a member holding both). Neither can happen otherwise: a
    member's own overrides concern them alone, and a channel override of a later layer
    stays after the copied bit. Judged on the overrides, not on today's members: a
    role nobody holds yet, a timed-out member (who shows only seeing and reading) or a
    former member's lingering deny would hide a difference from a comparison of
    members."""

    def level(o: q.OverrideRow) -> int:
        return _MEMBER if o.user_id is not None else _EVERYONE if o.role_id == everyone else _ROLE

    mine = [o for o in own if o.channel_id == channel_id]  # (the caller's are its alone)
    sets = {(o.role_id, o.user_id): o.allow | o.deny for o in mine}
    out = 0
    for c in category:
        target = (c.role_id, c.user_id)
        alone = (c.allow | c.deny) & ~sets.get(target, 0)
        if not alone:
            continue
        at = level(c)
        for o in mine:
            if (o.role_id, o.user_id) != target and (level(o) < at or level(o) == at == _ROLE):
                out |= alone & (o.allow | o.deny)
    return out


@dataclass(frozen=True)
class Copy:
    """What a category's deletion copies (plan_category_overrides), to write with
    keep_category_overrides."""

    overrides: list[q.OverrideRow]  # the category's: what is copied
    channel_ids: list[UUID]  # the channels synced with it
    writes: list[q.OverrideRow]  # their overrides as they will be


async def plan_category_overrides(
    conn: asyncpg.Connection, category: q.ChannelRow, synced: list[q.ChannelRow]
) -> Copy:
    """What giving each channel synced with `category` a copy of its overrides as its
    own (`merged`) writes, checked, writing nothing (so that a refused deletion is
    refused before the caller reads anything more); in the caller's transaction, which
    holds the server's lock. A channel whose own overrides and the category's cannot be
    made one layer without changing what someone holds there refuses (`crossed`: nobody
    gains or loses anything by the deletion, now or later).

    Raises: Forbidden (TOO_MANY_OVERRIDES: a channel would hold more than MAX_OVERRIDES,
    those channels in `channel_ids`, or the server's channels more than
    MAX_SERVER_OVERRIDES); Conflict (CATEGORY_OVERRIDES_CONFLICT, the channels in
    `channel_ids`)."""
    server_id = category.server_id
    assert server_id is not None
    ids = [c.id for c in synced]
    overrides = await q.list_overrides(conn, channel_ids=[category.id])
    if not ids:
        return Copy(overrides, [], [])
    own: dict[UUID, list[q.OverrideRow]] = {c: [] for c in ids}
    for o in await q.list_overrides(conn, channel_ids=ids):
        own[o.channel_id].append(o)
    roles = await roles_q.list_roles(conn, server_id=server_id)
    everyone = next(r.id for r in roles if r.is_default)
    conflicting = [c for c in ids if crossed(overrides, own[c], c, everyone)]
    if conflicting:
        # (`channel_ids` names them all; the caller keeps those its actor may see)
        raise Conflict(
            "a channel following this category has overrides of its own that cannot take"
            " the category's without changing someone's permissions there: change them, or"
            " stop it following the category, first",
            code="CATEGORY_OVERRIDES_CONFLICT",
            extra={"channel_ids": [str(c) for c in conflicting]},
        )
    writes: dict[Target, tuple[int, int]] = {}
    added = 0
    full = []
    for channel_id in ids:
        mine = merged(overrides, own[channel_id], channel_id)
        held = {(o.channel_id, o.role_id, o.user_id) for o in own[channel_id]}
        new = sum(t not in held for t in mine)
        if len(own[channel_id]) + new > MAX_OVERRIDES:
            full.append(channel_id)
        writes.update(mine)
        added += new
    if full:  # (named as a conflict's are: the caller keeps those its actor may see)
        raise _too_many(f"a channel has at most {MAX_OVERRIDES} overrides", full)
    stored = await q.count_server_overrides(conn, server_id=server_id)
    if stored - len(overrides) + added > MAX_SERVER_OVERRIDES:
        raise _too_many(f"a server's channels have at most {MAX_SERVER_OVERRIDES} overrides")
    return Copy(overrides, ids, [q.OverrideRow(*target, *bits) for target, bits in writes.items()])


async def keep_category_overrides(conn: asyncpg.Connection, copy: Copy) -> None:
    """Write a planned copy: the synced channels' overrides, and make them follow the
    category no more (in the caller's transaction, which deletes the category next)."""
    if copy.channel_ids:
        await servers_q.upsert_overrides(conn, rows=copy.writes)
        await q.update_channels_unsynced(conn, channel_ids=copy.channel_ids)


def _too_many(message: str, channel_ids: list[UUID] | None = None) -> Forbidden:
    return Forbidden(
        message + " (the deleted category's overrides, copied into the channels following it)",
        code="TOO_MANY_OVERRIDES",
        extra={} if channel_ids is None else {"channel_ids": [str(c) for c in channel_ids]},
    )
