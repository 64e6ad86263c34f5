"""Conversations: direct (two people, one per pair) and group (a name, up to 25 people,
managed by their owner). Anyone who is not a participant gets 404 for everything about
a conversation: it might as well not exist.

Consent. A group takes only people who agreed to know its adder: you put someone in a
group (creating it, or adding them later) only if they are your friend, and only if no
block stands between them and anyone in it. Both refusals are the one answer
CANNOT_ADD_USER, so a person told "no" cannot learn whether a block is why (a block
ends a friendship, so whoever is blocked is no friend anyway). A direct conversation is
open to anyone who takes direct messages from you (domain/access.py's direct_refused):
its refusal is the one answer CANNOT_MESSAGE_USER, a block or the other's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import conversations as q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import users as users_q
from xfchat.domain import user_targets, voice
from xfchat.domain.access import (
    VisibleChannel,
    access_changed,
    access_changed_many,
    access_channel,
    cannot_message,
    direct_refused,
    user_deleted,
    visible_conversations,
)
from xfchat.domain.account_lock import hold_accounts
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import (
    ConversationAddedPayload,
    ConversationPayload,
    MessagePayload,
)
from xfchat.domain.events import (
    CONVERSATION_ADDED,
    CONVERSATION_CREATED,
    CONVERSATION_REMOVED,
    CONVERSATION_UPDATED,
    PARTICIPANT_ADDED,
    PARTICIPANT_REMOVED,
    Event,
    emit,
    emit_many,
)
from xfchat.domain.messages import view_json
from xfchat.domain.messages_purge import purge_channels
from xfchat.domain.pairs import lock_pairs, lock_pairs_among
from xfchat.domain.profile import lock_dm_policies, public_profile
from xfchat.domain.validation import check_one_line, looks_empty
from xfchat.errors import BadRequest, Forbidden, NotFound

MAX_PARTICIPANTS = 25
# Each conversation is a stream every connection of its people follows; this bounds
# what a connection's follow set and a replay's channel list hold.
MAX_CONVERSATIONS_PER_USER = 1000
MAX_NAME = 100
ROOM_NAMESPACE = b"conversation-room"  # (the advisory lock of one person's count)


@dataclass(frozen=True)
class Conversation:
    channel: channels_q.ChannelRow
    participants: list[users_q.PublicUserRow]  # in the order they joined

    @property
    def participant_ids(self) -> list[UUID]:
        return [p.id for p in self.participants]

    def json(self) -> ConversationPayload:
        """The conversation as every answer and event shows it."""
        channel = self.channel
        return {
            "id": str(channel.id),
            "kind": channel.kind,
            "name": channel.name,
            "owner_id": str(channel.owner_id) if channel.owner_id else None,
            "participant_ids": [str(p.id) for p in self.participants],
            "participants": [public_profile(p) for p in self.participants],
            "created_at": channel.created_at.isoformat(),
        }


async def conversation_of(
    conn: asyncpg.Connection, channel: channels_q.ChannelRow, people: list[UUID]
) -> Conversation:
    """The conversation with these participants' public profiles."""
    return Conversation(channel, await users_q.list_public_users(conn, user_ids=people))


async def check_room(conn: asyncpg.Connection, users: list[UUID]) -> None:
    """Raises Forbidden (TOO_MANY_CONVERSATIONS) if one of them is at the limit. Each
    one's count is taken under their lock (held until the caller's transaction ends,
    which then adds them): two groups, or a group and a direct conversation, made at
    once by different people with the same person cannot both take their last place.
    The locks come last of the caller's locks but its new rows (after the pairs' and
    a group's row: domain/pairs.py), all in one statement, sorted."""
    keys = sorted({locks_q.advisory_key(ROOM_NAMESPACE, u) for u in users})
    await locks_q.lock_transaction_all(conn, keys=keys)
    if await q.users_at_conversation_limit(conn, user_ids=users, limit=MAX_CONVERSATIONS_PER_USER):
        raise Forbidden(
            f"someone here already takes part in {MAX_CONVERSATIONS_PER_USER} conversations",
            code="TOO_MANY_CONVERSATIONS",
        )


def not_found() -> NotFound:
    return NotFound("no such conversation", code="CONVERSATION_NOT_FOUND")


async def access_conversation(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, *, lock: bool = False
) -> channels_q.ChannelRow:
    """The conversation, if the actor may see it (the channel-access seam decides).
    Raises NotFound (CONVERSATION_NOT_FOUND) otherwise."""
    try:
        access = await access_channel(conn, actor, conversation_id, lock=lock)
    except NotFound:
        raise not_found() from None
    if access.channel.server_id is not None:
        raise not_found()
    return access.channel


async def get_or_create_direct(
    conn: asyncpg.Connection, user_a: UUID, user_b: UUID
) -> tuple[channels_q.ChannelRow, bool]:
    """The pair's direct conversation, created (opened by `user_a`, with both participants)
    if missing.
    Must run inside the caller's transaction; returns (conversation, created)."""
    existing = await channels_q.get_direct_channel(conn, user_a=user_a, user_b=user_b)
    if existing is None:
        await check_room(conn, [user_a, user_b])
    channel = existing or await channels_q.insert_direct_channel(conn, user_a=user_a, user_b=user_b)
    created = existing is None and channel is not None
    if channel is None:
        channel = await channels_q.get_direct_channel(conn, user_a=user_a, user_b=user_b)
        assert channel is not None
    added = await channels_q.insert_conversation_participants(
        conn, channel_id=channel.id, user_ids=[user_a, user_b]
    )
    if added:
        await access_changed(conn, channel.id)
        summary = (await conversation_of(conn, channel, sorted([user_a, user_b]))).json()
        await emit_many(conn, [CONVERSATION_CREATED.to_user(u, summary) for u in added])
    return channel, created


async def open_direct(
    conn: asyncpg.Connection, actor: Actor, user_id: UUID
) -> tuple[Conversation, bool]:
    """Open (create or reuse) the direct conversation with `user_id`.

    Raises:
        BadRequest: CANNOT_MESSAGE_SELF. NotFound: USER_NOT_FOUND.
        Forbidden: CANNOT_MESSAGE_USER (they take no direct messages from the actor: a
            block either way, or friends only; the same answer for both), USER_DELETED.
    """
    if user_id == actor.user_id:
        raise BadRequest("you cannot open a conversation with yourself", code="CANNOT_MESSAGE_SELF")
    other = await users_q.get_public_user(conn, user_id=user_id)
    if other is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    if other.deleted_at is not None:
        raise user_deleted()
    async with conn.transaction():
        # Neither account's deletion is under way (domain/account_lock.py). A block, an
        # unfriending or the other's choice of friends only under way comes wholly
        # before (and the opening is refused) or after (and closes it).
        await hold_accounts(conn, actor, [user_id])
        await lock_pairs(conn, [(actor.user_id, user_id)])
        await lock_dm_policies(conn, [user_id])
        if await direct_refused(conn, actor.user_id, user_id):
            raise cannot_message()
        channel, created = await get_or_create_direct(conn, actor.user_id, user_id)
        conversation = await conversation_of(conn, channel, sorted([actor.user_id, user_id]))
    return conversation, created


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if looks_empty(name) or len(name) > MAX_NAME:
        raise BadRequest(
            f"a conversation name is 1 to {MAX_NAME} characters",
            code="INVALID_CONVERSATION_NAME",
            field="name",
        )
    return check_one_line(name, field="name", code="INVALID_CONVERSATION_NAME")


async def _check_newcomers(
    conn: asyncpg.Connection, actor: Actor, newcomers: list[UUID], present: list[UUID]
) -> None:
    """Raises unless every newcomer is the actor's friend with no block between them and
    anyone `present` or another newcomer (see the module's docstring). Must run in the
    caller's transaction, which then holds those pairs' locks (domain/pairs.py) until
    it commits the newcomers' places."""
    if len(set(await q.existing_user_ids(conn, user_ids=newcomers))) != len(set(newcomers)):
        raise BadRequest(
            "one of the participants does not exist",
            code="INVALID_PARTICIPANTS",
            field="participant_ids",
        )
    # A block or an unfriending under way between any two of them comes wholly before
    # (and is seen here) or after (and finds them together). (A deleted newcomer was
    # refused under the account locks the caller took first.)
    await lock_pairs_among(conn, newcomers, [actor.user_id, *present])
    if await q.strangers_among(conn, user_id=actor.user_id, others=newcomers) or (
        await q.block_between(conn, users=newcomers, others=[*present, *newcomers])
    ):
        raise Forbidden(
            "you can add only your friends, and only people who may be in a conversation "
            "with everyone in it",
            code="CANNOT_ADD_USER",
            field="participant_ids",
        )


async def create_group(
    conn: asyncpg.Connection, actor: Actor, *, name: str | None, participant_ids: list[UUID]
) -> Conversation:
    """Start a group conversation owned by the actor.

    Raises:
        BadRequest: INVALID_CONVERSATION_NAME, INVALID_PARTICIPANTS, TOO_MANY_PARTICIPANTS.
        Forbidden: CANNOT_ADD_USER (not all of them the actor's friends, or a block among
            them), USER_DELETED (one of them deleted their account).
    """
    name = _name(name)
    others = sorted({u for u in participant_ids if u != actor.user_id})
    if len(others) + 1 > MAX_PARTICIPANTS:
        raise BadRequest(
            f"a group has at most {MAX_PARTICIPANTS} participants",
            code="TOO_MANY_PARTICIPANTS",
            field="participant_ids",
        )
    async with conn.transaction():
        await hold_accounts(conn, actor, others)  # (first: domain/account_lock.py)
        await _check_newcomers(conn, actor, others, [actor.user_id])
        await check_room(conn, [actor.user_id, *others])
        channel = await q.insert_group(conn, name=name, owner_id=actor.user_id)
        everyone = [actor.user_id, *others]
        await channels_q.insert_conversation_participants(
            conn, channel_id=channel.id, user_ids=everyone
        )
        conversation = await conversation_of(conn, channel, sorted(everyone))  # (as GET lists them)
        summary = conversation.json()
        await emit_many(conn, [CONVERSATION_CREATED.to_user(u, summary) for u in everyone])
    return conversation


class ConversationView(ConversationPayload):
    """A conversation as one of its people sees it in a list (or alone)."""

    last_read_seq: int  # how far they have read
    unread: int  # others' live messages after that, counted up to 100
    mention_count: int  # ... of which mention them
    last_message: MessagePayload | None


async def _views(
    conn: asyncpg.Connection, actor: Actor, rows: list[q.ConversationListRow]
) -> list[ConversationView]:
    people = list(dict.fromkeys(p for r in rows for p in r.participant_ids))
    profiles = {p.id: p for p in await users_q.list_public_users(conn, user_ids=people)}
    last_ids = [r.last_message_id for r in rows if r.last_message_id is not None]
    lasts = {
        v.id: view_json(v)
        for v in await messages_q.list_message_views(conn, viewer=actor.user_id, ids=last_ids)
    }
    return [
        {
            **Conversation(
                r.channel, [profiles[p] for p in r.participant_ids if p in profiles]
            ).json(),
            "last_read_seq": r.last_read_seq,
            "unread": r.unread,
            "mention_count": r.mention_count,
            "last_message": lasts.get(r.last_message_id) if r.last_message_id else None,
        }
        for r in rows
    ]


MAX_PAGE = 100


async def list_conversations(
    conn: asyncpg.Connection, actor: Actor, *, after: UUID | None, limit: int
) -> list[ConversationView]:
    """A page of the actor's conversations by id: `limit` of them after `after`. By id,
    not by activity, so that a message sent while a client pages moves nothing: every
    conversation comes once."""
    visible = await visible_conversations(conn, actor.user_id)
    mine = [c.channel_id for c in visible.values() if c.server_id is None]
    rows = await q.list_conversations_by_id(
        conn, user_id=actor.user_id, channel_ids=mine, after=after, limit=limit
    )
    return await _views(conn, actor, rows)


# Conversations the state reads at once: at least, and at most (a large one is tens of
# kilobytes, so a chunk read past the budget costs a few megabytes at most).
STATE_CHUNK, STATE_CHUNK_MAX = 25, 100


async def recent_conversations(
    conn: asyncpg.Connection,
    actor: Actor,
    visible: dict[UUID, VisibleChannel],
    budget: int,
) -> tuple[list[ConversationView], bool]:
    """The actor's conversations, most recently active first, as many as fit in `budget`
    bytes of JSON (up to the first that does not); and whether some were left out. They
    are read a chunk at a time, each as large as the budget left seems to hold, so
    that large ones (25 people with long avatar URLs, a 4,000-character last message)
    are not all read to keep a few. `visible`: the actor's visible channels."""
    mine = [c.channel_id for c in visible.values() if c.server_id is None]
    ids = await q.list_conversation_ids_by_activity(conn, channel_ids=mine)
    kept: list[ConversationView] = []
    used = start = 0
    while start < len(ids):
        # As many as the budget left seems to hold, judged by those so far, within
        # bounds: whoever adds you to groups chooses their sizes and order.
        n = (budget - used) // max(1, used // len(kept)) if kept else STATE_CHUNK
        chunk = ids[start : start + min(STATE_CHUNK_MAX, max(STATE_CHUNK, n))]
        start += len(chunk)
        rows = await q.list_conversations(conn, user_id=actor.user_id, channel_ids=chunk)
        for view in await _views(conn, actor, rows):
            used += len(orjson.dumps(view))
            if used > budget:
                return kept, True
            kept.append(view)
    return kept, False


async def get_conversation(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID
) -> ConversationView:
    """One conversation, with the same fields as in the list.

    Raises: NotFound (CONVERSATION_NOT_FOUND)."""
    channel = await access_conversation(conn, actor, conversation_id)
    rows = await q.list_conversations(conn, user_id=actor.user_id, channel_ids=[channel.id])
    return (await _views(conn, actor, rows))[0]


async def _group_of(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID
) -> tuple[channels_q.ChannelRow, list[UUID]]:
    channel = await access_conversation(conn, actor, conversation_id, lock=True)
    if channel.kind != "group":
        raise BadRequest("only group conversations can do that", code="NOT_A_GROUP")
    return channel, await q.list_participant_ids(conn, channel_id=channel.id)


async def rename_conversation(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, name: str | None
) -> Conversation:
    """Any participant may rename a group (or clear its name with None). A rename to
    the name it has changes nothing and tells no one."""
    name = _name(name)
    async with conn.transaction():
        channel, people = await _group_of(conn, actor, conversation_id)
        if name == channel.name:
            return await conversation_of(conn, channel, people)
        channel = await q.update_group(
            conn, channel_id=channel.id, name=name, owner_id=channel.owner_id
        )
        conversation = await conversation_of(conn, channel, people)
        await emit(conn, CONVERSATION_UPDATED.to_channel(channel.id, conversation.json()))
    return conversation


async def add_participant(
    conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, user_id: UUID
) -> Conversation:
    """The owner adds someone to a group. Adding someone already there changes nothing.

    Raises:
        Forbidden: NOT_CONVERSATION_OWNER, CANNOT_ADD_USER (not the owner's friend, or a
            block between them and someone in the group), USER_DELETED.
        BadRequest: NOT_A_GROUP, TOO_MANY_PARTICIPANTS, INVALID_PARTICIPANTS.
    """
    async with conn.transaction():
        await hold_accounts(conn, None, [user_id])  # (first: domain/account_lock.py)
        channel, people = await _group_of(conn, actor, conversation_id)
        if channel.owner_id != actor.user_id:
            raise Forbidden("only the owner adds people", code="NOT_CONVERSATION_OWNER")
        if user_id in people:
            return await conversation_of(conn, channel, people)
        if len(people) + 1 > MAX_PARTICIPANTS:
            raise BadRequest(
                f"a group has at most {MAX_PARTICIPANTS} participants", code="TOO_MANY_PARTICIPANTS"
            )
        await _check_newcomers(conn, actor, [user_id], people)
        await check_room(conn, [user_id])
        await channels_q.insert_conversation_participants(
            conn, channel_id=channel.id, user_ids=[user_id]
        )
        await access_changed(conn, channel.id)
        conversation = await conversation_of(conn, channel, [*people, user_id])
        newcomer = conversation.participants[-1]
        # With the newcomer's read position and counts, as the list counts them: what was
        # said before (or while they were away, back after leaving) is there already,
        # and no event of it will reach them to count.
        (mine,) = await q.list_conversations(conn, user_id=user_id, channel_ids=[channel.id])
        added: ConversationAddedPayload = {
            **conversation.json(),
            "last_read_seq": mine.last_read_seq,
            "unread": mine.unread,
            "mention_count": mine.mention_count,
        }
        # The newcomer's stream first: it follows the conversation from then on, so it
        # sees its own participant.added and everything after.
        await emit_many(
            conn,
            [
                CONVERSATION_ADDED.to_user(user_id, added),
                PARTICIPANT_ADDED.to_channel(
                    channel.id,
                    {
                        "channel_id": str(channel.id),
                        "user_id": str(user_id),
                        "user": public_profile(newcomer),
                    },
                ),
            ],
        )
    return conversation


async def remove_participant(
    conn: asyncpg.Connection,
    actor: Actor,
    conversation_id: UUID,
    user_id: UUID,
) -> None:
    """The owner removes someone, or anyone leaves (removes themself). When the owner
    leaves, the longest-standing participant becomes the owner; when the last one leaves,
    the conversation is deleted, its messages and files with it.

    Raises:
        Forbidden: NOT_CONVERSATION_OWNER. BadRequest: NOT_A_GROUP.
        NotFound: PARTICIPANT_NOT_FOUND, CONVERSATION_NOT_FOUND.
    """
    async with conn.transaction():
        channel, people = await _group_of(conn, actor, conversation_id)
        if user_id != actor.user_id and channel.owner_id != actor.user_id:
            raise Forbidden("only the owner removes others", code="NOT_CONVERSATION_OWNER")
        if user_id not in people:
            raise NotFound("that user is not in this conversation", code="PARTICIPANT_NOT_FOUND")
        await _take_out(conn, user_id, [(channel, people)])


async def leave_groups(conn: asyncpg.Connection, actor: Actor, group_ids: list[UUID]) -> None:
    """The actor leaves each of these groups as remove_participant would (the owner rule,
    the last one out), all at once: an account's deletion leaves up to
    MAX_CONVERSATIONS_PER_USER, in a few statements where one at a time took about ten
    each (4.9 s for 1,000, every one of those groups' rows held meanwhile). The caller
    holds their rows' locks (taken in id order); one the actor is no longer in (removed
    since) is left alone."""
    groups = await q.list_groups_with_participants(conn, channel_ids=group_ids)
    await _take_out(conn, actor.user_id, [g for g in groups if actor.user_id in g[1]])


async def _take_out(
    conn: asyncpg.Connection, user_id: UUID, groups: list[tuple[channels_q.ChannelRow, list[UUID]]]
) -> None:
    """Take the user out of these groups (each with its participants, the user among
    them, in the order they joined; their rows locked), a statement for all of them a
    step, in the caller's transaction."""
    ids = [channel.id for channel, _ in groups]
    if not ids:
        return
    await q.delete_participant_of_all(conn, user_id=user_id, channel_ids=ids)
    await user_targets.forget_channels(conn, user_id, ids)
    await access_changed_many(conn, ids)
    # Their calls end. The leaver's stream comes first (emit_many's order): it follows
    # nothing of a conversation after conversation.removed, this transaction's own
    # events included.
    events: list[Event] = await voice.end_states_in(conn, {user_id: ids})
    empty: list[UUID] = []
    heirs: dict[UUID, list[UUID]] = {}  # an owned group's id: its participants left
    for channel, people in groups:
        events += [
            CONVERSATION_REMOVED.to_user(user_id, {"id": str(channel.id)}),
            PARTICIPANT_REMOVED.to_channel(
                channel.id, {"channel_id": str(channel.id), "user_id": str(user_id)}
            ),
        ]
        left = [p for p in people if p != user_id]
        if not left:  # the last one out: nobody could reach it again, so it goes
            empty.append(channel.id)
        elif channel.owner_id == user_id:  # the longest-standing participant owns it now
            heirs[channel.id] = left
    if heirs:
        handed = await q.hand_over_groups(
            conn, channel_ids=list(heirs), owner_ids=[left[0] for left in heirs.values()]
        )
        profiles = {
            u.id: u
            for u in await users_q.list_public_users(
                conn, user_ids=sorted({p for left in heirs.values() for p in left})
            )
        }
        events += [
            CONVERSATION_UPDATED.to_channel(
                channel.id,
                Conversation(
                    channel, [profiles[p] for p in heirs[channel.id] if p in profiles]
                ).json(),
            )
            for channel in handed
        ]
    await emit_many(conn, events)
    if empty:  # (their messages and files purged after)
        await purge_channels(conn, empty)
        await channels_q.delete_channels(conn, channel_ids=empty)
