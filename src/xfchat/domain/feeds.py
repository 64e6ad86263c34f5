"""Where a real-time connection starts: one consistent read of the log's head, what the
user may see, and (for a resume) the changes of that since the resume position.

Each read is one REPEATABLE READ snapshot. Commits are numbered in commit order and
whoever sees commit g sees every commit before it, so the snapshot's head is exactly
"everything up to here": the channels read in it are those followed right after that
commit, and a replay of the log up to it (realtime/subscriber.py) joins the live stream
with nothing missed and nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import event_log as log_q
from xfchat.domain import messages
from xfchat.domain.access import access_channel, member_servers, visible_channels
from xfchat.domain.accounts import Actor, require_live_session
from xfchat.domain.event_payloads import MessagePayload
from xfchat.domain.events import ACCESS_CHANGES
from xfchat.domain.permissions import Permission
from xfchat.domain.state import (
    ResumedStatePayload,
    StatePayload,
    read_resumed_state,
    read_state,
)

MAX_ACCESS_CHANGES = 10_000  # a resume over more changes than this is a resync
# How far the clock of the process that handed a token out may run behind the
# database's before a resume from it is taken for one of a lost history (a resync).
ISSUE_SKEW_S = 5
SNAPSHOT_SIZE = 50


@dataclass(frozen=True)
class FeedStart:
    head: int  # the log's last commit in the snapshot
    pruned_g: int  # commits up to here are gone
    channels: set[UUID]  # what the user may see after `head`
    servers: set[UUID]  # ... and the servers they are a member of
    # The user's access changes after the resume position, up to `head`, oldest first
    # (empty without one).
    changes: list[tuple[str, Any]]
    # Why the resume position cannot be used: "expired" (older than the log, or too
    # much changed since), "unknown" (beyond the head); None if it can (or none given).
    refused: str | None
    # The user's state as of `head`, for a connection that does not resume (no
    # position, or a refused one); None for a resume.
    state: StatePayload | None
    # For a resume: what the log does not keep (presences, your status), as of `head`;
    # None without one.
    resumed: ResumedStatePayload | None = None

    @property
    def ready(self) -> StatePayload | ResumedStatePayload:
        """What `ready` carries besides who and `resumed`."""
        if self.state is not None:
            return self.state
        assert self.resumed is not None
        return self.resumed


async def read_access_changes(
    conn: asyncpg.Connection, user_id: UUID, after: tuple[int, int], upto: int
) -> list[tuple[str, Any]] | None:
    """The user's access changes (events that grant or revoke a channel) after a place,
    up to a commit, oldest first; None if there are too many to replay."""
    rows = await log_q.list_feed_events(
        conn,
        user_id=user_id,
        channel_ids=[],
        types=list(ACCESS_CHANGES),
        after_g=after[0],
        after_pos=after[1],
        upto_g=upto,
        limit=MAX_ACCESS_CHANGES + 1,
    )
    return None if len(rows) > MAX_ACCESS_CHANGES else [(r.type, r.data) for r in rows]


async def _made_by(conn: asyncpg.Connection, g: int, issued: int) -> bool:
    """Whether commit `g`, the last a token handed out at `issued` covers, was made by
    then (give or take ISSUE_SKEW_S of clocks); True when the log cannot tell (no such
    commit: none yet, or retention took it)."""
    made = await log_q.get_commit_time(conn, g=g) if g > 0 else None
    return made is None or made.timestamp() <= issued + 1 + ISSUE_SKEW_S


async def read_user_follows(conn: asyncpg.Connection, actor: Actor) -> tuple[set[UUID], set[UUID]]:
    """The channels and servers the user's feed would follow now (read_user_feed_start's,
    without the rest: a HEAD's count of them).

    Raises: Unauthorized (SESSION_REVOKED)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await require_live_session(conn, actor)
        return (
            set(await visible_channels(conn, actor.user_id)),
            set(await member_servers(conn, actor.user_id)),
        )


async def read_user_feed_start(
    conn: asyncpg.Connection,
    actor: Actor,
    since: tuple[int, int] | None,
    presence_timeout_s: float,
    *,
    issued: int | None = None,
) -> FeedStart:
    """Where the user's feed starts: from `since` if it can be resumed from, else from
    the head with the user's state. `issued`: the Unix second the place was handed out
    (realtime/cursor.py), when the token says.

    Raises: Unauthorized (SESSION_REVOKED)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await require_live_session(conn, actor)
        head = await log_q.get_log_head(conn)
        channels = set(await visible_channels(conn, actor.user_id))
        servers = set(await member_servers(conn, actor.user_id))
        changes: list[tuple[str, Any]] | None = []
        refused = None
        if since is not None:
            g, pos = since
            if g <= head.pruned_g:
                refused = "expired"
            elif g > head.g + 1 or (g == head.g + 1 and pos):
                refused = "unknown"
            elif issued is not None and not await _made_by(conn, g if pos else g - 1, issued):
                refused = "unknown"  # (a history a restored backup lost)
            elif g <= head.g:
                changes = await read_access_changes(conn, actor.user_id, since, head.g)
                if changes is None:
                    refused = "expired"
        resumes = since is not None and refused is None
        state = None if resumes else await read_state(conn, actor, presence_timeout_s)
        resumed = await read_resumed_state(conn, actor, presence_timeout_s) if resumes else None
    return FeedStart(
        head.g, head.pruned_g, channels, servers, changes or [], refused, state, resumed
    )


async def read_state_snapshot(
    conn: asyncpg.Connection, actor: Actor, presence_timeout_s: float
) -> tuple[StatePayload, int]:
    """The user's state and the log's head it is current at, from one snapshot.

    Raises: Unauthorized (SESSION_REVOKED)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await require_live_session(conn, actor)
        head = await log_q.get_log_head(conn)
        return await read_state(conn, actor, presence_timeout_s), head.g


@dataclass(frozen=True)
class ChannelFeedStart:
    head: int
    resume: tuple[int, str] | None  # (seq, id) of the message a resume starts after
    newest: list[MessagePayload]  # newest first: the snapshot (just the newest on a resume)


async def read_channel_feed_start(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, versions: list[str] | None
) -> ChannelFeedStart:
    """One channel's message list (a Braid-HTTP subscription): where a resume starts and
    the newest messages, from the same snapshot as the head.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); Gone
    (VERSION_UNKNOWN); Unauthorized (SESSION_REVOKED)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await require_live_session(conn, actor)
        head = await log_q.get_log_head(conn)
        await access_channel(conn, actor, channel_id, need=Permission.READ_MESSAGE_HISTORY)
        resume = None
        if versions is not None:
            resume = await messages.resume_point(conn, actor, channel_id, versions)
        newest, _ = await messages.list_messages(
            conn,
            actor,
            channel_id,
            limit=SNAPSHOT_SIZE if resume is None else 1,
            before=None,
            after=None,
        )
    return ChannelFeedStart(head.g, resume, newest)
