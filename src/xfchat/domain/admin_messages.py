"""An operator deletes a spammer's messages everywhere (`xfchat admin delete-messages`):
in servers and conversations alike, as the author deleting them would (tombstones, the
text scrubbed from the event log, `message.deleted` to everyone who sees the channel),
one transaction per channel and batch."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q
from xfchat.domain.admin_accounts import find_account
from xfchat.domain.messages import delete_rows

BATCH = 100  # messages read per round, at most; each channel's deleted in one transaction


@dataclass(frozen=True)
class Purged:
    user: users_q.UserRow
    messages: int
    channels: int


async def delete_messages_of(pool: asyncpg.Pool, who: str, since: datetime | None) -> Purged:
    """Delete every live message of the account (id, username or email; a deleted
    account by its id: its messages stayed when it went, as a spammer's do who deletes
    it after the spam) sent at `since` or later (every one, if None).

    Raises:
        NotFound: USER_NOT_FOUND.
    """
    async with pool.acquire() as conn:
        user = await find_account(conn, who, deleted_too=True)
    deleted = 0
    channels: set[UUID] = set()
    # The walk goes on from the last message it read (each round reads only what is
    # ahead of it); when it finds none, it walks once more from the first, for a send
    # that was under way as it passed that send's time (a message's time is its
    # transaction's start), and ends when that walk finds none either. A message a
    # moderator deleted meanwhile is passed like any other.
    after: tuple[datetime, UUID] | None = None
    while True:
        async with pool.acquire() as conn:
            found = await messages_q.list_live_messages_by_author(
                conn, author_id=user.id, since=since, after=after, limit=BATCH
            )
        if not found:
            if after is None:
                return Purged(user, deleted, len(channels))
            after = None
            continue
        after = (found[-1].created_at, found[-1].id)
        by_channel: dict[UUID, list[UUID]] = defaultdict(list)
        for m in found:
            by_channel[m.channel_id].append(m.id)
        for channel_id, ids in by_channel.items():
            async with pool.acquire() as conn, conn.transaction():
                # (the locks in the order a deletion by its author takes them)
                await servers_q.key_share_channel_server(conn, channel_id=channel_id)
                # (none of a channel deleted since the walk read them: they wait for the
                # purge, migration 0055, and nobody sees them)
                if not await channels_q.key_share_channel(conn, channel_id=channel_id):
                    continue
                rows = [
                    r
                    for r in await messages_q.lock_messages(
                        conn, channel_id=channel_id, message_ids=ids
                    )
                    if r.deleted_at is None and r.author_id == user.id
                ]
                if rows:
                    await delete_rows(conn, user.id, channel_id, rows)
            deleted += len(rows)
            channels.add(channel_id)
