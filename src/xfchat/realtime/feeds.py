"""Opening a subscription: what a connection follows and from where.

The user's feed (SSE, the gateway) follows their own stream and every channel they
may see. Without a token it starts at the log's head; with one it starts right after
the token's place, following the channels it followed *then* (the current ones with
the changes since undone), and replays the log from there (realtime/subscriber.py).
A token that is malformed, another user's, from before the log's retention or beyond
its head is not used: the feed starts at the head and the caller is told why (the
client must reload its state: a "resync").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import PresencePayload
from xfchat.domain.feeds import (
    ChannelFeedStart,
    FeedStart,
    read_channel_feed_start,
    read_user_feed_start,
    read_user_follows,
)
from xfchat.realtime.cursor import BadToken, Position, TokenCodec
from xfchat.realtime.follows import Follows
from xfchat.realtime.hub import Hub, counted_streams
from xfchat.realtime.subscriber import Subscriber


@dataclass(frozen=True)
class Refused:
    """Why a resume token was not used."""

    reason: str  # "malformed" (or another user's), "expired", "unknown"
    message: str


def check_token(
    codec: TokenCodec, user_id: UUID, token: str
) -> tuple[Position, int | None] | Refused:
    """The token's place and the second it was handed out, or why it cannot be used."""
    try:
        return codec.read(token, codec.tag(user_id))
    except BadToken as exc:
        return Refused("malformed", str(exc))


REFUSALS = {
    "expired": "the resume position is older than the event log keeps",
    "unknown": "the resume position is not one this server handed out",
}


async def open_user_feed(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, token: str | None
) -> tuple[Subscriber, Refused | None, FeedStart]:
    """Everything the user follows, from the head or right after `token`; why a token
    was not used (then the feed starts at the head); and where it starts (with the
    user's state unless it resumes).

    Raises: Unauthorized (SESSION_REVOKED); RateLimited (TOO_MANY_CONNECTIONS)."""
    hub.admit(actor.user_id)  # (before the reads; subscribe checks again)
    presence_mark = hub.presence_signals  # (before the ready's presences are read)
    since = None if token is None else check_token(hub.codec, actor.user_id, token)
    position, issued = since if isinstance(since, tuple) else (None, None)
    async with pool.acquire() as conn:
        start = await read_user_feed_start(
            conn,
            actor,
            None if position is None else (position.g, position.pos),
            hub.presence.timeout_s if hub.presence is not None else 0.0,
            issued=issued,
        )
    refused = since if isinstance(since, Refused) else None
    if start.refused is not None:
        refused = Refused(start.refused, REFUSALS[start.refused])
    follows = Follows(actor.user_id, start.channels, servers=start.servers)
    sub = hub.subscribe(actor.user_id, actor.session_id, follows)
    hub.opened(sub)
    me: Mapping[str, Any] | None = None  # (a fresh ready's status is its user's)
    if start.state is not None:
        me, presences = start.state["user"], start.state["presences"]
    elif start.resumed is not None:
        me, presences = start.resumed, start.resumed["presences"]
    if me is not None:
        own: PresencePayload = {
            "user_id": str(actor.user_id),
            "status": me["status"],
            "status_text": me["status_text"],
        }
        sub.watch_presences(presence_mark, own, presences)
    if position is None or refused is not None:
        sub.start(Position(start.head + 1, 0), start.head, set())
    else:
        granted = follows.rewind(start.changes)
        sub.start(position, start.head, granted)
    return sub, refused, start


async def admit_user_feed(hub: Hub, pool: asyncpg.Pool, actor: Actor) -> None:
    """open_user_feed's refusals, with no subscription (a HEAD): the cap on connections,
    then the budget of what the user's connections follow, counted as its GET would.

    Raises: Unauthorized (SESSION_REVOKED); RateLimited (TOO_MANY_CONNECTIONS)."""
    hub.admit(actor.user_id)
    async with pool.acquire() as conn:
        channels, servers = await read_user_follows(conn, actor)
    hub.admit(actor.user_id, counted_streams(Follows(actor.user_id, channels, servers=servers)))


def admit_channel_feed(hub: Hub, actor: Actor, channel_id: UUID) -> None:
    """open_channel_feed's refusals, with no subscription (a HEAD).

    Raises: RateLimited (TOO_MANY_CONNECTIONS)."""
    hub.admit(actor.user_id, counted_streams(_one_channel(actor, channel_id)))


def _one_channel(actor: Actor, channel_id: UUID) -> Follows:
    return Follows(actor.user_id, [channel_id], only=channel_id)


async def peek_channel_feed(
    pool: asyncpg.Pool, actor: Actor, channel_id: UUID, versions: list[str] | None
) -> ChannelFeedStart:
    """Where a channel's feed would start, with open_channel_feed's checks, and no
    subscription (a HEAD: the subscription's head, nothing held)."""
    async with pool.acquire() as conn:
        return await read_channel_feed_start(conn, actor, channel_id, versions)


async def open_channel_feed(
    hub: Hub, pool: asyncpg.Pool, actor: Actor, channel_id: UUID, versions: list[str] | None
) -> tuple[Subscriber, ChannelFeedStart]:
    """One channel's events from now on (for as long as the user may see it), with the
    message list where the subscription starts, read in the same snapshot.

    Raises: NotFound (CHANNEL_NOT_FOUND); Forbidden (MISSING_PERMISSIONS); Gone
    (VERSION_UNKNOWN); Unauthorized (SESSION_REVOKED); RateLimited (TOO_MANY_CONNECTIONS)."""
    hub.admit(actor.user_id)
    start = await peek_channel_feed(pool, actor, channel_id, versions)
    sub = hub.subscribe(actor.user_id, actor.session_id, _one_channel(actor, channel_id))
    sub.start(Position(start.head + 1, 0), start.head, set())
    return sub, start
