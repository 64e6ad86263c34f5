"""Friend requests, friendships and blocks.

Every change between two users first takes a transaction-scoped advisory lock on the
pair, so a block and a friend request racing each other cannot both win. A friend
request never reveals a block: it is refused with the same answer as for an unknown
username.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from xfchat.db.queries import blocks as blocks_q
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import friends as friends_q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import users as users_q
from xfchat.domain import voice
from xfchat.domain.access import user_deleted
from xfchat.domain.account_lock import hold_accounts
from xfchat.domain.accounts import Actor
from xfchat.domain.conversations import get_or_create_direct
from xfchat.domain.event_payloads import (
    FriendRequestPayload,
)
from xfchat.domain.events import (
    BLOCK_ADDED,
    BLOCK_REMOVED,
    FRIEND_ADDED,
    FRIEND_REMOVED,
    FRIEND_REQUEST_ACCEPTED,
    FRIEND_REQUEST_CANCELLED,
    FRIEND_REQUEST_CREATED,
    FRIEND_REQUEST_DECLINED,
    Event,
    EventType,
    emit_many,
)
from xfchat.domain.profile import lock_dm_policies, public_profile
from xfchat.errors import BadRequest, Conflict, NotFound

REFUSED = "could not send a friend request to that user"
# How many users one may block. It bounds the block list (the state carries it whole)
# and the rows one account can make; 1,000 is far beyond what a person blocks by hand,
# while a script at the API's rate would otherwise add some 36,000 an hour.
MAX_BLOCKS = 1000
# A user's requests waiting for an answer at once (each a row, and a line in its
# recipient's list: the rate limit alone let them grow for ever, 20 an hour).
MAX_PENDING_SENT = 1000
CLOSED = {"declined": FRIEND_REQUEST_DECLINED, "cancelled": FRIEND_REQUEST_CANCELLED}
DECLINE_COOLDOWN_S = 24 * 3600  # (a declined request is not sent again sooner)


@dataclass(frozen=True)
class FriendRequestView:
    """A request as one of its two users sees it: `other` is the user at the other end;
    `conversation_id` is the pair's direct conversation once accepted."""

    request: friends_q.FriendRequestRow
    other: users_q.PublicUserRow
    conversation_id: UUID | None = None


async def _lock_pair(conn: asyncpg.Connection, a: UUID, b: UUID) -> None:
    # (domain/pairs.py's lock_pairs takes the same keys for the conversations' checks)
    await locks_q.lock_transaction(conn, key=locks_q.pair_key(a, b))


async def _lock_blocker(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Blocks at once by one user wait for each other, so none passes MAX_BLOCKS."""
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(b"blocks", user_id))


async def _lock_sender(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Requests at once by one user wait for each other, so none passes
    MAX_PENDING_SENT (taken before the pair's lock, and by nothing else)."""
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(b"friend-requests", user_id))


def request_data(
    req: friends_q.FriendRequestRow, other: users_q.PublicUserRow
) -> FriendRequestPayload:
    """The request as one of its two users sees it (`other` is the one at the other
    end)."""
    return {
        "id": str(req.id),
        "from_user_id": str(req.from_user_id),
        "to_user_id": str(req.to_user_id),
        "status": req.status,
        "created_at": req.created_at.isoformat(),
        "user": public_profile(other),
    }


async def _profiles(conn: asyncpg.Connection, *users: UUID) -> dict[UUID, users_q.PublicUserRow]:
    return {p.id: p for p in await users_q.list_public_users(conn, user_ids=list(users))}


def _to_both(
    kind: EventType[FriendRequestPayload],
    req: friends_q.FriendRequestRow,
    profiles: dict[UUID, users_q.PublicUserRow],
    conversation_id: UUID | None = None,
) -> list[Event]:
    """The event for each of the request's two users, each with the other's profile
    (`profiles` holds both)."""
    pair = (req.from_user_id, req.to_user_id)
    events = []
    for me, other in (pair, pair[::-1]):
        data = request_data(req, profiles[other])
        if conversation_id is not None:
            data["conversation_id"] = str(conversation_id)
        events.append(kind.to_user(me, data))
    return events


async def send_friend_request(
    conn: asyncpg.Connection, actor: Actor, *, username: str
) -> FriendRequestView:
    """Ask `username` to be friends. If they had already asked the actor, this accepts
    their request instead (the view's status is then "accepted"). A request to someone
    who blocked the actor is answered and kept as any other, but its recipient is never
    told nor shown it: it stays pending, as one they ignore would (a refusal would
    reveal the block).

    Raises:
        BadRequest: CANNOT_FRIEND_SELF; FRIEND_REQUEST_REFUSED (no such user, or one the
            actor blocked); TOO_MANY_FRIEND_REQUESTS (MAX_PENDING_SENT waiting already). Conflict: ALREADY_FRIENDS, FRIEND_REQUEST_EXISTS. Forbidden:
            USER_DELETED. Unauthorized: SESSION_REVOKED (the actor's account deleted).
    """
    target = await users_q.get_public_user_by_username(conn, username=username.strip())
    if target is None:
        raise BadRequest(REFUSED, code="FRIEND_REQUEST_REFUSED", field="username")
    if target.deleted_at is not None:
        raise user_deleted()
    if target.id == actor.user_id:
        raise BadRequest(
            "you cannot send a friend request to yourself",
            code="CANNOT_FRIEND_SELF",
            field="username",
        )
    async with conn.transaction():
        # Neither account's deletion is under way (domain/account_lock.py): a request
        # never names a deleted account.
        await hold_accounts(conn, actor, [target.id])
        await _lock_sender(conn, actor.user_id)
        await _lock_pair(conn, actor.user_id, target.id)
        if await blocks_q.block_exists(conn, blocker_id=actor.user_id, blocked_id=target.id):
            raise BadRequest(REFUSED, code="FRIEND_REQUEST_REFUSED", field="username")
        hidden = await blocks_q.block_exists(conn, blocker_id=target.id, blocked_id=actor.user_id)
        if await friends_q.friendship_exists(conn, user_a=actor.user_id, user_b=target.id):
            raise Conflict("you are already friends", code="ALREADY_FRIENDS")
        pending = await friends_q.get_pending_request_between(
            conn, user_a=actor.user_id, user_b=target.id
        )
        if pending is not None:
            if pending.from_user_id == actor.user_id:
                raise Conflict(
                    "you have already sent this user a request", code="FRIEND_REQUEST_EXISTS"
                )
            accepted, conversation_id = await _accept(conn, pending)
            return FriendRequestView(accepted, target, conversation_id)
        await _not_declined_lately(conn, actor.user_id, target.id)
        if await friends_q.count_pending_sent(conn, from_user_id=actor.user_id) >= MAX_PENDING_SENT:
            raise BadRequest(
                f"you have {MAX_PENDING_SENT} friend requests waiting for an answer; "
                "cancel some first",
                code="TOO_MANY_FRIEND_REQUESTS",
                field="username",
            )
        request = await friends_q.insert_friend_request(
            conn, from_user_id=actor.user_id, to_user_id=target.id
        )
        profiles = await _profiles(conn, actor.user_id, target.id)
        events = _to_both(FRIEND_REQUEST_CREATED, request, profiles)
        await emit_many(conn, events[:1] if hidden else events)  # (the sender's first)
        return FriendRequestView(request, target)


async def _not_declined_lately(conn: asyncpg.Connection, sender: UUID, target: UUID) -> None:
    """A declined request may not be sent again for DECLINE_COOLDOWN_S (each would notify
    its target again: asking over and over is how a no is worn down). Asked by the other,
    or after that, it may.

    Raises: Conflict (FRIEND_REQUEST_DECLINED, with retry_after)."""
    left = await friends_q.declined_for(
        conn, from_user_id=sender, to_user_id=target, within_s=DECLINE_COOLDOWN_S
    )
    if left is not None:
        raise Conflict(
            "this user declined your request lately: you may ask again in "
            f"{math.ceil(left / 3600)} hour(s)",
            code="FRIEND_REQUEST_DECLINED",
            retry_after=math.ceil(left),
            extra={"retry_after": math.ceil(left)},
        )


async def _accept(
    conn: asyncpg.Connection, request: friends_q.FriendRequestRow
) -> tuple[friends_q.FriendRequestRow, UUID]:
    accepted = await friends_q.set_friend_request_status(
        conn, request_id=request.id, status="accepted"
    )
    await friends_q.insert_friendship(conn, user_a=request.from_user_id, user_b=request.to_user_id)
    conversation, _ = await get_or_create_direct(conn, request.from_user_id, request.to_user_id)
    profiles = await _profiles(conn, request.from_user_id, request.to_user_id)
    events = _to_both(FRIEND_REQUEST_ACCEPTED, accepted, profiles, conversation.id)
    for me, other in (
        (request.from_user_id, request.to_user_id),
        (request.to_user_id, request.from_user_id),
    ):
        events.append(
            FRIEND_ADDED.to_user(
                me,
                {
                    "user_id": str(other),
                    "user": public_profile(profiles[other]),
                    "conversation_id": str(conversation.id),
                },
            )
        )
    await emit_many(conn, events)
    return accepted, conversation.id


async def _pending_request(
    conn: asyncpg.Connection, actor: Actor, request_id: UUID, *, as_recipient: bool
) -> friends_q.FriendRequestRow:
    request = await friends_q.get_friend_request(conn, request_id=request_id, lock=True)
    owner = (request.to_user_id if as_recipient else request.from_user_id) if request else None
    if request is None or owner != actor.user_id or (as_recipient and await _hidden(conn, request)):
        raise NotFound("no such friend request", code="FRIEND_REQUEST_NOT_FOUND")
    if request.status != "pending":
        raise Conflict(
            f"the friend request was already {request.status}", code="FRIEND_REQUEST_NOT_PENDING"
        )
    return request


async def accept_friend_request(
    conn: asyncpg.Connection, actor: Actor, request_id: UUID
) -> FriendRequestView:
    """Accept a request sent to the actor: they become friends and their direct
    conversation is created, or reused if it exists.

    Raises:
        NotFound: FRIEND_REQUEST_NOT_FOUND. Conflict: FRIEND_REQUEST_NOT_PENDING.
    """
    async with conn.transaction():
        # The pair lock comes before any row lock, in the same order as everywhere else.
        peek = await friends_q.get_friend_request(conn, request_id=request_id)
        if peek is not None:
            await _lock_pair(conn, peek.from_user_id, peek.to_user_id)
        request = await _pending_request(conn, actor, request_id, as_recipient=True)
        accepted, conversation_id = await _accept(conn, request)
        sender = await users_q.get_public_user(conn, user_id=request.from_user_id)
        assert sender is not None
        return FriendRequestView(accepted, sender, conversation_id)


async def decline_friend_request(conn: asyncpg.Connection, actor: Actor, request_id: UUID) -> None:
    """The recipient says no. Raises NotFound (FRIEND_REQUEST_NOT_FOUND), Conflict
    (FRIEND_REQUEST_NOT_PENDING)."""
    await _close_request(conn, actor, request_id, status="declined")


async def cancel_friend_request(conn: asyncpg.Connection, actor: Actor, request_id: UUID) -> None:
    """The sender takes it back. Raises NotFound (FRIEND_REQUEST_NOT_FOUND), Conflict
    (FRIEND_REQUEST_NOT_PENDING)."""
    await _close_request(conn, actor, request_id, status="cancelled")


async def _close_request(
    conn: asyncpg.Connection, actor: Actor, request_id: UUID, *, status: str
) -> None:
    async with conn.transaction():
        request = await _pending_request(conn, actor, request_id, as_recipient=status == "declined")
        closed = await friends_q.set_friend_request_status(
            conn, request_id=request.id, status=status
        )
        profiles = await _profiles(conn, closed.from_user_id, closed.to_user_id)
        events = _to_both(CLOSED[status], closed, profiles)
        await emit_many(conn, events[:1] if await _hidden(conn, closed) else events)


async def _hidden(conn: asyncpg.Connection, request: friends_q.FriendRequestRow) -> bool:
    """Whether the request's recipient blocked its sender: it is never shown to them."""
    return await blocks_q.block_exists(
        conn, blocker_id=request.to_user_id, blocked_id=request.from_user_id
    )


async def list_friend_requests(
    conn: asyncpg.Connection,
    actor: Actor,
    *,
    direction: Literal["both", "incoming", "outgoing"] = "both",
    before: tuple[datetime, UUID] | None = None,
    limit: int,
) -> list[FriendRequestView]:
    """The actor's pending requests (incoming, outgoing or both), newest first: `limit`
    of them after `before` (a request's created_at and id)."""
    rows = await friends_q.list_pending_requests(
        conn, user_id=actor.user_id, direction=direction, before=before, limit=limit
    )
    return [FriendRequestView(r.request, r.other) for r in rows]


async def list_friends(conn: asyncpg.Connection, actor: Actor) -> list[friends_q.FriendRow]:
    return await friends_q.list_friends(conn, user_id=actor.user_id)


async def list_blocked(
    conn: asyncpg.Connection, actor: Actor, *, after: UUID | None = None, limit: int = MAX_BLOCKS
) -> list[users_q.PublicUserRow]:
    """Those the actor blocked, by user id: `limit` of them after `after`."""
    return await blocks_q.list_blocked(conn, blocker_id=actor.user_id, after=after, limit=limit)


async def remove_friend(conn: asyncpg.Connection, actor: Actor, user_id: UUID) -> None:
    """End a friendship. Whichever of the two takes direct messages from friends only
    closes their direct conversation to the other (who leaves its call, if in it).

    Raises NotFound (FRIEND_NOT_FOUND)."""
    async with conn.transaction():
        await _lock_pair(conn, actor.user_id, user_id)
        # (A choice of friends only at the same time then comes wholly before or after.)
        await lock_dm_policies(conn, [actor.user_id, user_id])
        if not await friends_q.delete_friendship(conn, user_a=actor.user_id, user_b=user_id):
            raise NotFound("that user is not your friend", code="FRIEND_NOT_FOUND")
        events = _friend_removed(actor.user_id, user_id)
        events += await _direct_access_changed(conn, actor.user_id, user_id)
        await emit_many(conn, events)


def _friend_removed(a: UUID, b: UUID) -> list[Event]:
    return [
        FRIEND_REMOVED.to_user(a, {"user_id": str(b)}),
        FRIEND_REMOVED.to_user(b, {"user_id": str(a)}),
    ]


async def _direct_access_changed(conn: asyncpg.Connection, a: UUID, b: UUID) -> list[Event]:
    """A block, its end or an unfriending changes what two people may do in their
    direct conversation, if they have one: a call it closed to either ends for them
    (the events to emit)."""
    direct = await channels_q.get_direct_channel(conn, user_a=a, user_b=b)
    if direct is None:
        return []
    return await voice.direct_access_changed(conn, [direct.id])


async def block_user(conn: asyncpg.Connection, actor: Actor, user_id: UUID) -> None:
    """Block a user: any friendship ends, the blocker's pending request to them is
    cancelled, and theirs to the blocker is hidden from the blocker (it stays pending
    for them). Blocking twice is fine. Only the blocker is told of the block.

    Raises:
        BadRequest: CANNOT_BLOCK_SELF, TOO_MANY_BLOCKS (MAX_BLOCKS already).
        NotFound: USER_NOT_FOUND. Unauthorized: SESSION_REVOKED (the actor's account
            deleted meanwhile).
    """
    if user_id == actor.user_id:
        raise BadRequest("you cannot block yourself", code="CANNOT_BLOCK_SELF")
    if await users_q.get_public_user(conn, user_id=user_id) is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    async with conn.transaction():
        # The actor's deletion is not under way (domain/account_lock.py): it deletes the
        # blocks it makes, but only those it finds, and a block of someone new takes no
        # lock the deletion holds.
        await hold_accounts(conn, actor)
        await _lock_pair(conn, actor.user_id, user_id)
        if await blocks_q.block_exists(conn, blocker_id=actor.user_id, blocked_id=user_id):
            return
        await _lock_blocker(conn, actor.user_id)  # (after the pair's: one order everywhere)
        if await blocks_q.count_blocks(conn, blocker_id=actor.user_id) >= MAX_BLOCKS:
            raise BadRequest(
                f"you can block at most {MAX_BLOCKS} users; unblock someone first",
                code="TOO_MANY_BLOCKS",
            )
        await blocks_q.insert_block(conn, blocker_id=actor.user_id, blocked_id=user_id)
        profiles = await _profiles(conn, actor.user_id, user_id)
        events: list[Event] = []
        if await friends_q.delete_friendship(conn, user_a=actor.user_id, user_b=user_id):
            events += _friend_removed(actor.user_id, user_id)
        pending = await friends_q.get_pending_request_between(
            conn, user_a=actor.user_id, user_b=user_id
        )
        if pending is not None and pending.from_user_id == actor.user_id:
            cancelled = await friends_q.set_friend_request_status(
                conn, request_id=pending.id, status="cancelled"
            )
            both = _to_both(FRIEND_REQUEST_CANCELLED, cancelled, profiles)
            # (one they never saw, having blocked the actor, ends unannounced to them, as
            # its sender's own cancellation does: a friend request never reveals a block)
            events += both[:1] if await _hidden(conn, cancelled) else both
        elif pending is not None:
            # Theirs stays pending for them, as one sent after the block would (a
            # cancellation they did not make would tell them of the block); it leaves
            # only the blocker's list, and comes back there with an unblock.
            data = request_data(pending, profiles[user_id])
            events.append(FRIEND_REQUEST_CANCELLED.to_user(actor.user_id, data))
        events.append(
            BLOCK_ADDED.to_user(
                actor.user_id, {"user_id": str(user_id), "user": public_profile(profiles[user_id])}
            )
        )
        events += await _direct_access_changed(conn, actor.user_id, user_id)  # (a call ends)
        await emit_many(conn, events)


async def unblock_user(conn: asyncpg.Connection, actor: Actor, user_id: UUID) -> None:
    """Raises NotFound (BLOCK_NOT_FOUND)."""
    async with conn.transaction():
        await _lock_pair(conn, actor.user_id, user_id)
        if not await blocks_q.delete_block(conn, blocker_id=actor.user_id, blocked_id=user_id):
            raise NotFound("you have not blocked that user", code="BLOCK_NOT_FOUND")
        events = await _direct_access_changed(conn, actor.user_id, user_id)
        await emit_many(
            conn, [BLOCK_REMOVED.to_user(actor.user_id, {"user_id": str(user_id)}), *events]
        )


async def lock_relations(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Take the pair lock of every pair the user has a friendship, a request or a block
    in, in one order (for an account deletion: changes of those pairs come wholly
    before or after it)."""
    others = await friends_q.list_counterparts(conn, user_id=user_id)
    keys = sorted(locks_q.pair_key(user_id, other) for other in others)
    await locks_q.lock_transaction_all(conn, keys=keys)


async def forget_relations(conn: asyncpg.Connection, gone: users_q.PublicUserRow) -> list[Event]:
    """A deleted account's friendships, friend requests and blocks go (in the caller's
    transaction, after lock_relations); the events that tell the other side, each with
    the account's scrubbed profile: `friend.removed` to its friends,
    `friend_request.cancelled` to whoever had a pending request from or to it (not to
    one who never saw it: a recipient who blocked its sender), `block.removed` to those
    who had blocked it. Its own blocks go unannounced: nobody else knew of them."""
    profile = public_profile(gone)
    events: list[Event] = []
    for friend in await friends_q.delete_friendships_of(conn, user_id=gone.id):
        events.append(FRIEND_REMOVED.to_user(friend, {"user_id": str(gone.id), "user": profile}))
    for request in await friends_q.delete_friend_requests_of(conn, user_id=gone.id):
        other = request.to_user_id if request.from_user_id == gone.id else request.from_user_id
        if request.to_user_id == other and await _hidden(conn, request):
            continue
        events.append(FRIEND_REQUEST_CANCELLED.to_user(other, request_data(request, gone)))
    for blocker in await blocks_q.delete_blocks_of(conn, user_id=gone.id):
        events.append(BLOCK_REMOVED.to_user(blocker, {"user_id": str(gone.id), "user": profile}))
    return events
