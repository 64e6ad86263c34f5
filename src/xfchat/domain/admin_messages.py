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
    taken_by_none: set[UUID] | None = None
    while True:
        async with pool.acquire() as conn:
            found = await messages_q.list_live_messages_by_author(
                conn, author_id=user.id, since=since, limit=BATCH
            )
        if not found or {m for _, m in found} == taken_by_none:
            # (none, or only those this round could not take: never loop on them)
            return Purged(user, deleted, len(channels))
        before = deleted
        by_channel: dict[UUID, list[UUID]] = defaultdict(list)
        for channel_id, message_id in found:
            by_channel[channel_id].append(message_id)
        for channel_id, ids in by_channel.items():
            async with pool.acquire() as conn, conn.transaction():
                # (the locks in the order a deletion by its author takes them)
                await servers_q.key_share_channel_server(conn, channel_id=channel_id)
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
        # A round that took none of those it found (a moderator deleted them meanwhile)
        # is no end: the next round finds the next ones. (Was: it ended the purge, and
        # said it was done with the rest of the spam still up.)
        taken_by_none = {m for _, m in found} if deleted == before else None
