"""A deleted category's overrides are kept by the channels synced with it: each gets a
copy of them as its own and stops following the category, in the deletion's
transaction, so nobody's permissions in those channels change (as Discord keeps a synced
channel's overwrites when its category goes). Without it, deleting a private category
would open each of its channels to the whole server.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as q
from xfchat.db.queries import servers as servers_q
from xfchat.domain.access import Holdings, server_holdings
from xfchat.domain.permissions import Permission
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


def _by_member(held: Holdings) -> dict[UUID, Permission]:
    return {user: perms for _, users, perms in held for user in users}


async def keep_category_overrides(
    conn: asyncpg.Connection, category: q.ChannelRow, synced: list[q.ChannelRow]
) -> list[q.OverrideRow]:
    """Give each channel synced with `category` a copy of its overrides as its own
    (`merged`), and make it follow the category no more; in the caller's transaction,
    which holds the server's lock and deletes the category next. Every member's
    permissions in each such channel are compared before and after: a channel whose own
    overrides and the category's cannot be made one layer without changing what someone
    holds there refuses (nobody gains or loses anything by the deletion). Returns the
    category's overrides (what was copied).

    Raises: Forbidden (TOO_MANY_OVERRIDES: a channel would hold more than MAX_OVERRIDES,
    or the server's channels more than MAX_SERVER_OVERRIDES); Conflict
    (CATEGORY_OVERRIDES_CONFLICT)."""
    server_id = category.server_id
    assert server_id is not None
    ids = [c.id for c in synced]
    overrides = await q.list_overrides(conn, channel_ids=[category.id])
    if not ids:
        return overrides
    own = await q.list_overrides(conn, channel_ids=ids)
    writes: dict[Target, tuple[int, int]] = {}
    for channel_id in ids:
        writes.update(merged(overrides, own, channel_id))
    held = {(o.channel_id, o.role_id, o.user_id) for o in own}
    added = [t for t in writes if t not in held]
    for channel_id in ids:
        mine = sum(o.channel_id == channel_id for o in own)
        if mine + sum(t[0] == channel_id for t in added) > MAX_OVERRIDES:
            raise _too_many(f"a channel has at most {MAX_OVERRIDES} overrides")
    stored = await q.count_server_overrides(conn, server_id=server_id)
    if stored - len(overrides) + len(added) > MAX_SERVER_OVERRIDES:
        raise _too_many(f"a server's channels have at most {MAX_SERVER_OVERRIDES} overrides")
    before = await server_holdings(conn, server_id, ids)
    for (channel_id, role_id, user_id), (allow, deny) in writes.items():
        await servers_q.upsert_permission_override(
            conn, channel_id=channel_id, role_id=role_id, user_id=user_id, allow=allow, deny=deny
        )
    for channel_id in ids:
        await q.update_channel(conn, channel_id=channel_id, permissions_synced=False)
    after = await server_holdings(conn, server_id, ids)
    if any(_by_member(before[c]) != _by_member(after[c]) for c in ids):
        raise Conflict(
            "a channel following this category has overrides of its own that cannot take"
            " the category's without changing someone's permissions there: change them, or"
            " stop it following the category, first",
            code="CATEGORY_OVERRIDES_CONFLICT",
        )
    return overrides


def _too_many(message: str) -> Forbidden:
    return Forbidden(
        message + " (the deleted category's overrides, copied into the channels following it)",
        code="TOO_MANY_OVERRIDES",
    )
