"""What a change in a server reveals and hides: who saw which of its channels before the
change and after, turned into `channel.revealed` and `channel.hidden` events for exactly
the members whose view changed, and `channel.history_hidden` for those who still see a
channel but may no longer read its history (their Braid subscriptions to it end there).

Use it inside the change's transaction, after `access_server(..., lock=True)`:

    seen = await watch(conn, server_id)          # before
    ... change roles, overrides, channels ...
    await settle(conn, seen, "permissions")      # after: the events, in the same commit

The events are access changes: the real-time core starts or stops delivering a
channel's events to a member's connections at exactly that place in the log, so a
hidden channel's next event never reaches them and a revealed one's first event does.
Each channel whose permissions the change may have touched has its access version
bumped (domain/access.py), so a send batch that read the old permissions retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.domain import voice
from xfchat.domain.access import MESSAGE_KINDS, access_changed_many, server_audience
from xfchat.domain.events import (
    CHANNEL_UPDATED,
    CHANNELS_HIDDEN,
    CHANNELS_HISTORY_HIDDEN,
    CHANNELS_REVEALED,
    Event,
    emit_many,
    encode,
)
from xfchat.domain.server_views import channels_json, revealed_read_states

# How much of channels' payloads a change's `channel.revealed` events may carry in all
# (a channel revealed to 200 members is 200 copies): past it they carry only ids.
REVEAL_INLINE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Seen:
    server_id: UUID
    channel_ids: list[UUID]
    user_ids: list[UUID] | None  # None: every member
    viewers: dict[UUID, set[UUID]]
    readers: dict[UUID, set[UUID]]  # those of the viewers who may read the history


async def watch(
    conn: asyncpg.Connection,
    server_id: UUID,
    *,
    channel_ids: list[UUID] | None = None,
    user_ids: list[UUID] | None = None,
) -> Seen:
    """Who sees which channels now (of these channels, or all of the server's; of these
    members, or all of them)."""
    if channel_ids is None:
        channel_ids = [
            c.id for c in await channels_q.list_server_channels(conn, server_id=server_id)
        ]
    audience = await server_audience(conn, server_id, channel_ids, user_ids)
    return Seen(server_id, channel_ids, user_ids, audience.viewers, audience.readers)


async def settle(
    conn: asyncpg.Connection,
    seen: Seen,
    reason: str,
    *,
    new_channel_ids: list[UUID] | None = None,
) -> None:
    """Tell each member what the change since `watch` revealed or hid (channels created
    since are `new_channel_ids`; deleted ones count as hidden)."""
    rows = {
        c.id: c
        for c in await channels_q.list_server_channels(conn, server_id=seen.server_id)
        if c.id in set(seen.channel_ids) | set(new_channel_ids or [])
    }
    audience = await server_audience(conn, seen.server_id, list(rows), seen.user_ids)
    after = audience.viewers
    gained: dict[UUID, list[UUID]] = {}
    lost: dict[UUID, list[UUID]] = {}
    unread: dict[UUID, list[UUID]] = {}  # still seen, its history no longer readable
    for channel_id in [*seen.channel_ids, *(new_channel_ids or [])]:
        before = seen.viewers.get(channel_id, set())
        now = after.get(channel_id, set())
        for user in now - before:
            gained.setdefault(user, []).append(channel_id)
        for user in before - now:
            lost.setdefault(user, []).append(channel_id)
        if channel_id not in rows or rows[channel_id].kind not in MESSAGE_KINDS:
            continue  # (a category or voice channel has no history to hide)
        read_before = seen.readers.get(channel_id, set())
        for user in (read_before - audience.readers.get(channel_id, set())) & now:
            unread.setdefault(user, []).append(channel_id)
    await access_changed_many(conn, [c for c in seen.channel_ids if c in rows])
    # Nobody stays in a voice channel they cannot see; those who stay are suppressed
    # where they may no longer speak (and no longer where they may again).
    events: list[Event] = await voice.end_states_in(conn, lost)
    events += await voice.resuppress(conn, seen.server_id)
    # (each channel's id written once, shared by every member's event that names it)
    named = {c: str(c) for c in [*seen.channel_ids, *(new_channel_ids or [])]}
    for event, who in ((CHANNELS_HIDDEN, lost), (CHANNELS_HISTORY_HIDDEN, unread)):
        for user, ids in sorted(who.items()):
            events.append(
                event.to_user(
                    user,
                    {
                        "server_id": str(seen.server_id),
                        "reason": reason,
                        "channel_ids": [named[c] for c in ids],
                    },
                )
            )
    if gained:
        payloads = {c["id"]: c for c in await channels_json(conn, list(rows.values()))}
        sizes = {key: len(encode(payload)) for key, payload in payloads.items()}
        # Each member's event carries the channels it reveals, unless that would repeat
        # more than REVEAL_INLINE_BYTES across the members: then the payloads follow, once
        # each, as `channel.updated` of the channel (after the grants, so they reach the
        # members who gain it), and the events carry only the channel ids.
        inline = sum(sizes[str(c)] for ids in gained.values() for c in ids) <= REVEAL_INLINE_BYTES
        # With them, what a client needs to show them besides: the member's read state in
        # each (as their `ready` would count it). Read after access_changed_many, whose
        # lock waited for the writes under way there (sends, edits, deletions: FOR KEY
        # SHARE): each committed before this read, and is counted, or waits and comes as
        # an event. Only with the payloads: counting is about 175 µs a member and channel
        # (1.8 s for a channel revealed to 10,000, in a transaction the channel's sends
        # wait for), and the payloads' budget bounds it to a few hundred pairs.
        reads = (
            await revealed_read_states(
                conn,
                seen.server_id,
                {user: [rows[c] for c in ids] for user, ids in gained.items()},
                audience.readers,
            )
            if inline
            else {}
        )
        for user, ids in sorted(gained.items()):
            events.append(
                CHANNELS_REVEALED.to_user(
                    user,
                    {
                        "server_id": str(seen.server_id),
                        "reason": reason,
                        "channel_ids": [named[c] for c in ids],
                        "channels": [payloads[str(c)] for c in ids] if inline else [],
                        "read_states": reads.get(user, []),
                    },
                )
            )
        if not inline:
            revealed = dict.fromkeys(c for ids in gained.values() for c in ids)
            events += [CHANNEL_UPDATED.to_channel(c, payloads[str(c)]) for c in revealed]
    await emit_many(conn, events)
