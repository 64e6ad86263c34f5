"""A client's whole world in one answer: what it needs to draw its first screen.

The gateway's and SSE's `ready`, and `GET /api/users/@me/state`, carry the same
object. It is read in the same database snapshot as the log's head, so the resume token
that comes with it names exactly the place after which every change is an event: apply
the events that follow and the state stays current.

Size: conversations are capped at 1,000 per user (each with at most 25 participants'
public profiles and its last message), friends and blocks hold one small object per
person, pending requests likewise; a typical state is a few kilobytes, and the caps
bound it.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from typing_extensions import TypedDict

from xfchat.domain import conversations, friends, presence, profile
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import ConversationView
from xfchat.domain.events import FriendRequestPayload, PresencePayload, PublicUserPayload


class PrivateUserPayload(PublicUserPayload):
    """The account as its owner sees it."""

    email: str
    status: str  # the status chosen: online, idle, dnd or invisible


class FriendView(TypedDict):
    user: PublicUserPayload
    since: str


class FriendRequestsView(TypedDict):
    incoming: list[FriendRequestPayload]
    outgoing: list[FriendRequestPayload]


class StatePayload(TypedDict):
    user: PrivateUserPayload
    conversations: list[ConversationView]
    friends: list[FriendView]
    friend_requests: FriendRequestsView
    blocks: list[PublicUserPayload]
    # Those of the people in `conversations` and `friends` who are not offline.
    presences: list[PresencePayload]


async def read_state(
    conn: asyncpg.Connection, actor: Actor, presence_timeout_s: float
) -> StatePayload:
    """The actor's state, read in the caller's transaction (a snapshot, for a resume
    token to go with it)."""
    me = await profile.get_me(conn, actor)
    requests = await friends.list_friend_requests(conn, actor)
    mine = await conversations.list_conversations(conn, actor)
    friendships = await friends.list_friends(conn, actor)
    related = {UUID(p["id"]) for c in mine for p in c["participants"]}
    related |= {f.user.id for f in friendships}
    related.discard(actor.user_id)
    return {
        "user": {**profile.public_profile(me), "email": me.email, "status": me.status},
        "conversations": mine,
        "friends": [
            {"user": profile.public_profile(f.user), "since": f.since.isoformat()}
            for f in friendships
        ],
        "friend_requests": {
            "incoming": [
                friends.request_data(r.request, r.other)
                for r in requests
                if r.request.to_user_id == actor.user_id
            ],
            "outgoing": [
                friends.request_data(r.request, r.other)
                for r in requests
                if r.request.from_user_id == actor.user_id
            ],
        },
        "blocks": [profile.public_profile(u) for u in await friends.list_blocked(conn, actor)],
        "presences": await presence.list_presences(conn, sorted(related), presence_timeout_s),
    }
