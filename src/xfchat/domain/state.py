"""A client's whole world in one answer: what it needs to draw its first screen.

The gateway's and SSE's `ready`, and `GET /api/users/@me/state`, carry the same
object. It is read in the same database snapshot as the log's head, so the resume token
that comes with it names exactly the place after which every change is an event: apply
the events that follow and the state stays current.

Size: other people can make a state grow (add you to groups, send you requests), so
its sections are bounded: conversations, most recently active first, until their JSON
reaches STATE_CONVERSATION_BYTES (read a chunk at a time, no further than that); at most
STATE_REQUESTS incoming and outgoing friend requests each, the newest; servers, in the
order joined, as many as fit in STATE_SERVER_BYTES of JSON (owners can grow theirs to
hundreds of channels and roles: one too big for what is left is skipped, so it cannot
crowd out those joined later). A section
cut short is named in `truncated` (its rest is a request away: `GET
/api/conversations`, `GET /api/users/@me/friend-requests`, `GET /api/users/@me/servers`
and `GET /api/servers/{id}`).
Friends and blocks need your own consent, one small object per person; blocks stop at
friends.MAX_BLOCKS (a longer list, from before that cap, is cut there: "blocks"), and
mutes at mutes.MAX_MUTES, notification settings at
notification_settings.MAX_NOTIFICATION_SETTINGS.
"""

from __future__ import annotations

from typing import TypeVar

import asyncpg
import orjson
from typing_extensions import TypedDict

from xfchat.domain import (
    conversations,
    friends,
    mutes,
    notification_settings,
    presence,
    profile,
    servers,
    voice,
)
from xfchat.domain.access import visible_channels
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import ConversationView
from xfchat.domain.event_payloads import (
    FriendRequestPayload,
    MutePayload,
    NotificationSettingPayload,
    PresencePayload,
    PublicUserPayload,
    ServerJoinedPayload,
    VoiceStatePayload,
)

T = TypeVar("T")


class PrivateUserPayload(PublicUserPayload):
    """The account as its owner sees it."""

    email: str
    status: str  # the status chosen: online, idle, dnd or invisible
    status_text: str | None  # your custom status (others see it only in your presence)


class FriendView(TypedDict):
    user: PublicUserPayload
    since: str


class FriendRequestsView(TypedDict):
    incoming: list[FriendRequestPayload]
    outgoing: list[FriendRequestPayload]


STATE_CONVERSATION_BYTES = 1 << 20
STATE_REQUESTS = 100
STATE_SERVER_BYTES = 4 << 20


class StatePayload(TypedDict):
    user: PrivateUserPayload
    conversations: list[ConversationView]
    friends: list[FriendView]
    friend_requests: FriendRequestsView
    blocks: list[PublicUserPayload]
    # My servers, each with its roles, the channels I may see and me as a member.
    servers: list[ServerJoinedPayload]
    # Those of the people you share a conversation with (all of them, in `conversations`
    # or not) and your friends who are not offline, by user id.
    presences: list[PresencePayload]
    # Who is in the calls of your conversations (a server's voice channels: in the server).
    voice_states: list[VoiceStatePayload]
    # Your mutes in force (at most mutes.MAX_MUTES): show those targets' unread messages
    # as read, not their mentions of you.
    mutes: list[MutePayload]
    # Your notification settings (at most notification_settings.MAX_NOTIFICATION_SETTINGS):
    # which new messages of a channel or server to notify you of; none set is the default.
    notification_settings: list[NotificationSettingPayload]
    # The sections cut short by their bound ("conversations", "friend_requests",
    # "servers", "blocks").
    truncated: list[str]


class ResumedStatePayload(TypedDict):
    """What a resumed connection's `ready` carries besides who it is: what the log does
    not keep (presence is not stored), current as of the place the resume ends at."""

    status: str  # the status you chose: online, idle, dnd or invisible
    status_text: str | None  # your custom status (a presence: not in the log either)
    # As in StatePayload: those of the people you share a conversation with and your
    # friends who are not offline (anyone absent is offline).
    presences: list[PresencePayload]


async def read_resumed_state(
    conn: asyncpg.Connection, actor: Actor, presence_timeout_s: float
) -> ResumedStatePayload:
    """The resumed `ready`'s part, read in the caller's transaction (the resume's
    snapshot)."""
    own = await presence.own_presence(conn, actor, presence_timeout_s)
    return {
        "status": own["status"],
        "status_text": own["status_text"],
        "presences": await presence.related_presences(conn, actor.user_id, presence_timeout_s),
    }


def _budgeted(items: list[T], budget: int) -> tuple[list[T], bool]:
    """The items whose JSON fits in `budget` bytes, in their order: one that does not fit
    in what is left is skipped, and later (smaller) ones still come; and whether some
    were left out."""
    kept: list[T] = []
    left = budget
    for item in items:
        size = len(orjson.dumps(item))
        if size <= left:
            kept.append(item)
            left -= size
    return kept, len(kept) < len(items)


async def read_state(
    conn: asyncpg.Connection, actor: Actor, presence_timeout_s: float
) -> StatePayload:
    """The actor's state, read in the caller's transaction (a snapshot, for a resume
    token to go with it)."""
    me = await profile.get_me(conn, actor)
    visible = await visible_channels(conn, actor.user_id)
    mine, cut = await conversations.recent_conversations(
        conn, actor, visible, STATE_CONVERSATION_BYTES
    )
    friendships = await friends.list_friends(conn, actor)
    incoming, outgoing = [
        [
            friends.request_data(r.request, r.other)
            for r in await friends.list_friend_requests(
                conn, actor, direction=direction, limit=STATE_REQUESTS + 1
            )
        ]
        for direction in ("incoming", "outgoing")
    ]
    truncated = ["conversations"] if cut else []
    if len(incoming) > STATE_REQUESTS or len(outgoing) > STATE_REQUESTS:
        truncated.append("friend_requests")
    joined, cut = _budgeted(await servers.list_joined(conn, actor, visible), STATE_SERVER_BYTES)
    if cut:
        truncated.append("servers")
    # All of them: at most MAX_BLOCKS (a list from before that cap is cut there).
    blocked = await friends.list_blocked(conn, actor, limit=friends.MAX_BLOCKS + 1)
    if len(blocked) > friends.MAX_BLOCKS:
        truncated.append("blocks")
    return {
        "user": {
            **profile.public_profile(me),
            "email": me.email,
            "status": me.status,
            "status_text": me.status_text,
        },
        "conversations": mine,
        "friends": [
            {"user": profile.public_profile(f.user), "since": f.since.isoformat()}
            for f in friendships
        ],
        "friend_requests": {  # (the newest first, as fetched)
            "incoming": incoming[:STATE_REQUESTS],
            "outgoing": outgoing[:STATE_REQUESTS],
        },
        "blocks": [profile.public_profile(u) for u in blocked[: friends.MAX_BLOCKS]],
        "servers": joined,
        "presences": await presence.related_presences(conn, actor.user_id, presence_timeout_s),
        "voice_states": await voice.states_in(
            conn, [c for c, v in visible.items() if v.server_id is None]
        ),
        "mutes": await mutes.list_mutes(conn, actor),
        "notification_settings": await notification_settings.list_notification_settings(
            conn, actor
        ),
        "truncated": truncated,
    }
