"""Every event type, defined once, and the one way to write an event.

An event type is a name (dotted past tense), an audience (whose connections receive
it) and a payload shape (a TypedDict: the writers are type-checked against it, the
README documents it, and tests check both). `emit(conn, event)` appends the event to
the durable log inside the writer's transaction; PostgreSQL orders and announces it
when, and only if, that transaction commits (db/queries/event_log.py).

Lock order: a transaction locks its domain rows first and emits last; `emit_many`
takes the streams' counter rows in one fixed order (users, then servers, then
channels), so that two writers touching the same streams cannot deadlock, and so that
a change of what a user may see (on the user's stream) comes before the channel events
of the same transaction.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.queries import event_log as q
from xfchat.domain.event_payloads import (
    ChannelsHiddenPayload,
    ChannelsRevealedPayload,
    ConversationAddedPayload,
    ConversationPayload,
    ConversationRemovedPayload,
    EmailPayload,
    FriendPayload,
    FriendRequestPayload,
    MemberPayload,
    MemberRemovedPayload,
    MessageDeletedPayload,
    MessagePayload,
    MessageUpdatedPayload,
    MutePayload,
    MuteTargetPayload,
    NotificationSettingPayload,
    ParticipantPayload,
    PinPayload,
    PresencePayload,
    PrivacyPayload,
    PublicUserPayload,
    ReactionChangePayload,
    ReadStatePayload,
    RoleDeletedPayload,
    RolePayload,
    ServerChannelPayload,
    ServerJoinedPayload,
    ServerLeftPayload,
    ServerPayload,
    SessionRevokedPayload,
    TypingPayload,
    UserRefPayload,
    VoiceConnectedPayload,
    VoiceErrorPayload,
    VoiceSignalPayload,
    VoiceStateUpdatedPayload,
)

EPHEMERAL_CHANNEL = "xfchat_ephemeral"


class StreamKind(enum.StrEnum):
    USER = "user"
    SERVER = "server"
    CHANNEL = "channel"


_RANK = {StreamKind.USER: 0, StreamKind.SERVER: 1, StreamKind.CHANNEL: 2}


@dataclass(frozen=True, slots=True)
class Stream:
    kind: StreamKind
    entity_id: UUID

    @classmethod
    def user(cls, user_id: UUID) -> Stream:
        return cls(StreamKind.USER, user_id)

    @classmethod
    def channel(cls, channel_id: UUID) -> Stream:
        return cls(StreamKind.CHANNEL, channel_id)

    @classmethod
    def server(cls, server_id: UUID) -> Stream:
        return cls(StreamKind.SERVER, server_id)

    def lock_order(self) -> tuple[int, UUID]:
        return _RANK[self.kind], self.entity_id


class Audience(enum.StrEnum):
    USER = "user"  # the user's own connections
    CHANNEL = "channel"  # everyone who may see the channel at the event's place
    SERVER = "server"  # every member of the server at the event's place
    # The user's own connections and everyone who shares a channel with them: the event
    # is appended to the user's stream and to each of those channels' streams.
    RELATED = "related"
    # One real-time connection (a gateway connection that holds a voice state), on
    # whichever process holds it; never stored.
    CONNECTION = "connection"


class AccessChange(enum.StrEnum):
    """A user-stream event that changes which streams that user may see: channels, and
    the streams of the servers they are a member of. Its event type says which
    (`EventType.targets`; by default the channel its payload's `id` names). Delivery
    applies it at the event's exact place."""

    GRANT = "grant"
    REVOKE = "revoke"
    # The channel's history may no longer be read: a subscription to its history (a
    # Braid subscription) ends; the user's feeds keep following it (live events go to
    # whoever may see a channel).
    REVOKE_HISTORY = "revoke_history"


P = TypeVar("P", bound=Mapping[str, Any])


def _the_channel(data: Mapping[str, Any]) -> list[Stream]:
    return [Stream.channel(UUID(str(data["id"])))]


@dataclass(frozen=True)
class Event:
    """A state change on its way into the log. Made only by an EventType."""

    type: str
    stream: Stream
    data: Mapping[str, Any]


@dataclass(frozen=True)
class EventType(Generic[P]):
    name: str
    audience: Audience
    payload: type[P]
    doc: str
    access: AccessChange | None = None
    stored: bool = True  # False: announced to whoever follows now, never kept or resumed
    # A channel event that may go to its user alone (`to_user`): a read position, which
    # in a conversation the others see as a read receipt when it goes above the highest
    # one they were told, and which otherwise (a move back or up to no more than that,
    # and any move in a server channel) goes to the user's own connections alone.
    may_be_own: bool = False
    # The streams an access change grants or revokes, read from its payload.
    targets: Callable[[Mapping[str, Any]], list[Stream]] = _the_channel

    def to_user(self, user_id: UUID, payload: P) -> Event:
        assert self.audience is Audience.USER or self.may_be_own, self.name
        return Event(self.name, Stream.user(user_id), payload)

    def to_channel(self, channel_id: UUID, payload: P) -> Event:
        assert self.audience is Audience.CHANNEL, self.name
        return Event(self.name, Stream.channel(channel_id), payload)

    def to_server(self, server_id: UUID, payload: P) -> Event:
        assert self.audience is Audience.SERVER, self.name
        return Event(self.name, Stream.server(server_id), payload)

    def to_related(
        self,
        user_id: UUID,
        channel_ids: Iterable[UUID],
        payload: P,
        server_ids: Iterable[UUID] = (),
    ) -> list[Event]:
        """The event on the user's stream, on each conversation they share with others
        and on each of their servers' streams (once per server, not per channel)."""
        assert self.audience is Audience.RELATED, self.name
        return [
            Event(self.name, Stream.user(user_id), payload),
            *(Event(self.name, Stream.channel(c), payload) for c in channel_ids),
            *(Event(self.name, Stream.server(s), payload) for s in server_ids),
        ]


# -- payloads


def _joined(data: Mapping[str, Any]) -> list[Stream]:
    return [
        Stream.server(UUID(str(data["id"]))),
        *(Stream.channel(UUID(str(c["id"]))) for c in data["channels"]),
    ]


def _left(data: Mapping[str, Any]) -> list[Stream]:
    return [
        Stream.server(UUID(str(data["id"]))),
        *(Stream.channel(UUID(str(c))) for c in data["channel_ids"]),
    ]


def _revealed(data: Mapping[str, Any]) -> list[Stream]:
    if "channel_ids" not in data:  # (one stored before 25 November 2026: payloads only)
        return [Stream.channel(UUID(str(c["id"]))) for c in data["channels"]]
    return [Stream.channel(UUID(str(c))) for c in data["channel_ids"]]


def _hidden(data: Mapping[str, Any]) -> list[Stream]:
    return [Stream.channel(UUID(str(c))) for c in data["channel_ids"]]


# -- the event types

U, C = Audience.USER, Audience.CHANNEL

MESSAGE_CREATED = EventType("message.created", C, MessagePayload, "A message was sent.")
MESSAGE_UPDATED = EventType(
    "message.updated",
    C,
    MessageUpdatedPayload,
    "A message was edited (reactions without `me`); `previous_mentions`: whom it mentioned before.",
)
MESSAGE_DELETED = EventType(
    "message.deleted",
    C,
    MessageDeletedPayload,
    "A message was deleted: from now on history shows its tombstone (`deleted`, this"
    " `deleted_at`, its `content`, mentions, reactions and files emptied, unpinned). With its"
    " author and whom it mentioned: what it counted for in the unread and mention counts.",
)
REACTION_ADDED = EventType(
    "reaction.added",
    C,
    ReactionChangePayload,
    "Someone reacted. `emoji` is spelt as the message's reaction is (the first to use it"
    " chose, in NFC): reacting with ❤️ to a message showing ❤ joins ❤ and says `❤` here, so"
    " match it to the message's reactions by that, not by what you sent. Replayed after the"
    " message was deleted, `emoji` is empty.",
)
REACTION_REMOVED = EventType(
    "reaction.removed",
    C,
    ReactionChangePayload,
    "Someone took a reaction back, or a moderator took it away, as it is spelt on the"
    " message; one for each spelling"
    " when a message holds the same emoji in two (stored before emoji were compared with"
    " their variation selectors aside). Replayed after the message was deleted, `emoji` is"
    " empty.",
)
MESSAGE_PINNED = EventType("message.pinned", C, PinPayload, "A message was pinned.")
MESSAGE_UNPINNED = EventType(
    "message.unpinned",
    C,
    PinPayload,
    "A message was unpinned: `pinned_by` is who unpinned it, `pinned_at` is null. Deleting"
    " a pinned message is only `message.deleted` (it leaves the pins with it).",
)
READ_STATE_UPDATED = EventType(
    "read_state.updated",
    C,
    ReadStatePayload,
    "Someone has read up to `last_read_seq`. To the others it is a read receipt, and never"
    " goes back: they hear only of a position above the highest they heard of (yours, a"
    " mark-unread and a read again up to where you had been, come to you alone). In a direct"
    " conversation closed either way (see **Consent and blocks**), yours come to you alone.",
    may_be_own=True,
)
TYPING_STARTED = EventType(
    "typing.started",
    C,
    TypingPayload,
    "Someone is typing (for `expires_in` seconds). Not stored: no resume position.",
    stored=False,
)
CONVERSATION_UPDATED = EventType(
    "conversation.updated", C, ConversationPayload, "A group was renamed or changed owner."
)
PARTICIPANT_ADDED = EventType(
    "participant.added", C, ParticipantPayload, "Someone was added to a group."
)
PARTICIPANT_REMOVED = EventType(
    "participant.removed", C, ParticipantPayload, "Someone left or was removed from a group."
)
CONVERSATION_CREATED = EventType(
    "conversation.created",
    U,
    ConversationPayload,
    "A conversation you take part in was created; its events follow.",
    access=AccessChange.GRANT,
)
CONVERSATION_ADDED = EventType(
    "conversation.added",
    U,
    ConversationAddedPayload,
    "You were added to a group (or back to one you left): with your read position there"
    " and its `unread` and `mention_count`, as `GET /api/conversations/{id}` counts them"
    " (messages sent before, or while you were away, count: no event brings them); its"
    " events follow.",
    access=AccessChange.GRANT,
)
CONVERSATION_REMOVED = EventType(
    "conversation.removed",
    U,
    ConversationRemovedPayload,
    "You left or were removed from a group; none of its events follow.",
    access=AccessChange.REVOKE,
)
FRIEND_REQUEST_CREATED = EventType(
    "friend_request.created", U, FriendRequestPayload, "A friend request to or from you."
)
FRIEND_REQUEST_ACCEPTED = EventType(
    "friend_request.accepted", U, FriendRequestPayload, "A friend request was accepted."
)
FRIEND_REQUEST_DECLINED = EventType(
    "friend_request.declined", U, FriendRequestPayload, "A friend request was declined."
)
FRIEND_REQUEST_CANCELLED = EventType(
    "friend_request.cancelled", U, FriendRequestPayload, "A friend request was cancelled."
)
FRIEND_ADDED = EventType("friend.added", U, FriendPayload, "You have a new friend.")
FRIEND_REMOVED = EventType("friend.removed", U, FriendPayload, "A friendship ended.")
BLOCK_ADDED = EventType("block.added", U, UserRefPayload, "You blocked someone.")
BLOCK_REMOVED = EventType("block.removed", U, UserRefPayload, "You unblocked someone.")
USER_UPDATED = EventType(
    "user.updated",
    Audience.RELATED,
    PublicUserPayload,
    "Someone's public profile changed (yours too): update every copy you keep. With"
    " `deleted: true` the account was deleted (its name is a placeholder from then on)."
    " Never the custom status: that is presence (`presence.updated`).",
)
PRESENCE_UPDATED = EventType(
    "presence.updated",
    Audience.RELATED,
    PresencePayload,
    "Someone came online, went offline or changed status or custom status (of a direct"
    " conversation's people, only friends hear it; `status_text` is null while offline or"
    " invisible, except to yourself). Not stored: `ready` carries the current presences.",
    stored=False,
)
S = Audience.SERVER
SERVER_JOINED = EventType(
    "server.joined",
    U,
    ServerJoinedPayload,
    "You joined (or created) a server: it, its roles and the channels you may see; their"
    " events follow.",
    access=AccessChange.GRANT,
    targets=_joined,
)
SERVER_LEFT = EventType(
    "server.left",
    U,
    ServerLeftPayload,
    "You left a server, were kicked or banned, or it was deleted; none of its events follow.",
    access=AccessChange.REVOKE,
    targets=_left,
)
SERVER_UPDATED = EventType(
    "server.updated",
    S,
    ServerPayload,
    "A server's name, description, icon, search language, default notification level"
    " or owner changed.",
)
CHANNELS_REVEALED = EventType(
    "channel.revealed",
    U,
    ChannelsRevealedPayload,
    "Server channels you may now see (new ones, or permissions changed); their events follow. "
    "`channels` has their payloads, or is empty when a change revealed too much to repeat "
    "them: each then follows as its `channel.updated`. `read_states`: yours in each text "
    "channel among them, as `ready` counts it (messages sent while you could not see it "
    "included); empty with `channels`: then ask `GET /api/users/@me/state`.",
    access=AccessChange.GRANT,
    targets=_revealed,
)
CHANNELS_HIDDEN = EventType(
    "channel.hidden",
    U,
    ChannelsHiddenPayload,
    "Server channels you may no longer see (deleted, or permissions changed); drop them.",
    access=AccessChange.REVOKE,
    targets=_hidden,
)
CHANNELS_HISTORY_HIDDEN = EventType(
    "channel.history_hidden",
    U,
    ChannelsHiddenPayload,
    "Server channels you still see but whose history you may no longer read (permissions"
    " changed: READ_MESSAGE_HISTORY lost): their history routes answer 403 and a Braid"
    " subscription to one ends; their live events still come.",
    access=AccessChange.REVOKE_HISTORY,
    targets=_hidden,
)
CHANNEL_UPDATED = EventType(
    "channel.updated",
    C,
    ServerChannelPayload,
    "A server channel's name, topic, position, category, slowmode, limit or overrides changed,"
    " or those of the category it follows (one event for each channel following it).",
)
MEMBER_JOINED = EventType("member.joined", S, MemberPayload, "Someone joined the server.")
ROLE_CREATED = EventType("role.created", S, RolePayload, "A role was made.")
ROLE_UPDATED = EventType(
    "role.updated", S, RolePayload, "A role's name, colour, position, flags or permissions changed."
)
ROLE_DELETED = EventType("role.deleted", S, RoleDeletedPayload, "A role was deleted.")
MEMBER_UPDATED = EventType(
    "member.updated",
    S,
    MemberPayload,
    "A member's nickname, roles, timeout, or server mute or deafen changed.",
)
MEMBER_REMOVED = EventType(
    "member.removed", S, MemberRemovedPayload, "Someone left, was kicked or was banned."
)
SESSION_REVOKED = EventType(
    "session.revoked",
    U,
    SessionRevokedPayload,
    "A session of yours ended (its streams close). `reason`: `logout`, `revoked` (from the"
    " sessions list, one or all but the asking one, or another session turned two-factor"
    " sign-in on or changed the account's email), `password_changed`, `token_reuse` (a used refresh token came back),"
    " `session_limit` (a login past the account's 100 live sessions ended this least"
    " recently used one) or `account_deleted` (the account was deleted).",
)
PRIVACY_UPDATED = EventType(
    "privacy.updated",
    U,
    PrivacyPayload,
    "You changed whom you take direct messages from (`PUT /api/users/@me/privacy`).",
)
EMAIL_UPDATED = EventType(
    "email.updated",
    U,
    EmailPayload,
    "Your account's email changed (`PATCH /api/users/@me`); told to nobody else."
    " Deleting the account replaces the address in these events of the log with its"
    " `@deleted.invalid` placeholder.",
)
MUTE_UPDATED = EventType(
    "mute.updated",
    U,
    MutePayload,
    "You muted a channel, conversation or server, or changed until when"
    " (`PUT /api/users/@me/mutes/{kind}/{id}`): show its unread messages as read, not its"
    " mentions of you, until `until` (null: until unmuted; past it, drop the mute).",
)
MUTE_REMOVED = EventType(
    "mute.removed",
    U,
    MuteTargetPayload,
    "You unmuted it (`DELETE /api/users/@me/mutes/{kind}/{id}`). Leaving a server or a"
    " conversation drops your mutes of it and its channels with no event of this kind:"
    " `server.left` and `conversation.removed` say it.",
)
NOTIFICATION_SETTINGS_UPDATED = EventType(
    "notification_settings.updated",
    U,
    NotificationSettingPayload,
    "You set which new messages of a channel, conversation or server to be notified of"
    " (`PUT /api/users/@me/notification-settings/{kind}/{id}`); told to nobody else.",
)
NOTIFICATION_SETTINGS_REMOVED = EventType(
    "notification_settings.removed",
    U,
    MuteTargetPayload,
    "You put it back to the default (`DELETE /api/users/@me/notification-settings/{kind}/{id}`)."
    " Leaving a server or a conversation drops your settings of it and its channels with no"
    " event of this kind: `server.left` and `conversation.removed` say it.",
)
VOICE_STATE_UPDATED = EventType(
    "voice.state_updated",
    C,
    VoiceStateUpdatedPayload,
    "Someone joined a voice channel or call, changed their mute or deafen, was moved,"
    " gained or lost SPEAK there (`suppress`), or left it (`left`: drop the state only if its `channel_id` and `connection_id` are"
    " those you hold). A move is two: the leave, then the join.",
)
VOICE_SIGNAL = EventType(
    "voice.signal",
    Audience.CONNECTION,
    VoiceSignalPayload,
    "WebRTC signalling (an SDP offer or answer, an ICE candidate) from someone in your"
    " voice channel, to your voice connection only. Not stored.",
    stored=False,
)

VOICE_CONNECTED = EventType(
    "voice.connected",
    Audience.CONNECTION,
    VoiceConnectedPayload,
    "Your join (gateway op 4) took: your state, everyone's in the channel, and the ICE"
    " servers (see **Voice**). To the joining connection only; not stored.",
    stored=False,
)
VOICE_ERROR = EventType(
    "voice.error",
    Audience.CONNECTION,
    VoiceErrorPayload,
    "A voice op (4 or 12) was refused or failed, with the HTTP API's error body (`to`:"
    " the signal's, when it is at most 38 characters); the connection stays. To that"
    " connection only; not stored.",
    stored=False,
)

EVENT_TYPES: dict[str, EventType[Any]] = {
    t.name: t
    for t in (
        MESSAGE_CREATED,
        MESSAGE_UPDATED,
        MESSAGE_DELETED,
        MESSAGE_PINNED,
        MESSAGE_UNPINNED,
        REACTION_ADDED,
        REACTION_REMOVED,
        READ_STATE_UPDATED,
        TYPING_STARTED,
        CONVERSATION_UPDATED,
        PARTICIPANT_ADDED,
        PARTICIPANT_REMOVED,
        CONVERSATION_CREATED,
        CONVERSATION_ADDED,
        CONVERSATION_REMOVED,
        FRIEND_REQUEST_CREATED,
        FRIEND_REQUEST_ACCEPTED,
        FRIEND_REQUEST_DECLINED,
        FRIEND_REQUEST_CANCELLED,
        FRIEND_ADDED,
        FRIEND_REMOVED,
        BLOCK_ADDED,
        BLOCK_REMOVED,
        USER_UPDATED,
        PRESENCE_UPDATED,
        SESSION_REVOKED,
        PRIVACY_UPDATED,
        EMAIL_UPDATED,
        MUTE_UPDATED,
        MUTE_REMOVED,
        NOTIFICATION_SETTINGS_UPDATED,
        NOTIFICATION_SETTINGS_REMOVED,
        SERVER_JOINED,
        SERVER_LEFT,
        SERVER_UPDATED,
        CHANNELS_REVEALED,
        CHANNELS_HIDDEN,
        CHANNELS_HISTORY_HIDDEN,
        CHANNEL_UPDATED,
        MEMBER_JOINED,
        MEMBER_UPDATED,
        MEMBER_REMOVED,
        ROLE_CREATED,
        ROLE_UPDATED,
        ROLE_DELETED,
        VOICE_STATE_UPDATED,
        VOICE_SIGNAL,
        VOICE_CONNECTED,
        VOICE_ERROR,
    )
}
ACCESS_CHANGES = {name: t.access for name, t in EVENT_TYPES.items() if t.access is not None}


def access_changes(event_type: str, data: Any) -> list[tuple[AccessChange, Stream]]:
    """The streams an event grants or revokes, in order (none for any other event, or
    for a payload that does not name them)."""
    kind = EVENT_TYPES.get(event_type)
    if kind is None or kind.access is None or not isinstance(data, Mapping):
        return []
    try:
        return [(kind.access, stream) for stream in kind.targets(data)]
    except (KeyError, ValueError, TypeError):
        return []


# -- writing


def encode(data: Mapping[str, Any]) -> str:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()


async def emit(conn: asyncpg.Connection, event: Event) -> None:
    """Append `event` to the log inside the caller's transaction.

    Raises:
        RuntimeError: called outside a transaction (the event would be visible before,
            or without, the write it describes), or for an event type that is not stored.
    """
    await emit_many(conn, [event])


async def emit_many(conn: asyncpg.Connection, events: Iterable[Event]) -> None:
    """Emit several events in one statement, streams taken in lock order (each stream's
    events keep their relative order)."""
    events = _storable(conn, events)
    by_stream: dict[Stream, list[Event]] = {}
    for event in events:
        by_stream.setdefault(event.stream, []).append(event)
    ordered = [e for stream in sorted(by_stream, key=Stream.lock_order) for e in by_stream[stream]]
    if len(by_stream) == 1:
        stream = ordered[0].stream
        await q.insert_events(
            conn,
            kind=stream.kind.value,
            entity_id=stream.entity_id,
            types=[e.type for e in ordered],
            datas=[encode(e.data) for e in ordered],
        )
    else:
        await _insert_many(conn, ordered)


def _storable(conn: asyncpg.Connection, events: Iterable[Event]) -> list[Event]:
    """`events`, checked to be emitted inside the writer's transaction and stored."""
    if not conn.is_in_transaction():
        raise RuntimeError("emit() must run inside the writer's transaction")
    events = list(events)
    for event in events:
        if not EVENT_TYPES[event.type].stored:
            raise RuntimeError(f"{event.type} is not stored: use signal()")
    return events


async def _insert_many(conn: asyncpg.Connection, ordered: list[Event]) -> None:
    if ordered:
        await q.insert_events_many(
            conn,
            kinds=[e.stream.kind.value for e in ordered],
            entity_ids=[e.stream.entity_id for e in ordered],
            types=[e.type for e in ordered],
            datas=[encode(e.data) for e in ordered],
        )


async def emit_in_order(conn: asyncpg.Connection, events: list[Event]) -> None:
    """emit_many, with the streams' appends numbered (given their `g`) in the order the
    streams first come in `events`, not in lock order: the log orders a transaction's
    appends as they were first written, so the streams are locked first, in lock order
    (no deadlock with other writers), and written after in the order given. For events
    whose order a client relies on across streams (a voice move: the leave, then the
    join). A stream written earlier in the transaction keeps its earlier place."""
    events = _storable(conn, events)
    streams = list(dict.fromkeys(e.stream for e in events))
    if len(streams) > 1:
        locked = sorted(streams, key=Stream.lock_order)
        await q.lock_streams(
            conn,
            kinds=[s.kind.value for s in locked],
            entity_ids=[s.entity_id for s in locked],
        )
    rank = {stream: i for i, stream in enumerate(streams)}
    # (stable: a stream's own order kept)
    await _insert_many(conn, sorted(events, key=lambda e: rank[e.stream]))


def _signal_payload(event: Event) -> str:
    assert not EVENT_TYPES[event.type].stored, event.type
    return encode(
        {
            "k": event.stream.kind.value,
            "e": str(event.stream.entity_id),
            "t": event.type,
            "d": dict(event.data),
        }
    )


async def signal(conn: asyncpg.Connection, event: Event) -> None:
    """Announce an event that is not kept (typing) to whoever follows its stream now."""
    await q.notify(conn, channel=EPHEMERAL_CHANNEL, payload=_signal_payload(event))


async def signal_if_facts_hold(
    conn: asyncpg.Connection, event: Event, facts: Mapping[str, Any]
) -> bool:
    """signal(), only if `facts` (one user's access facts in one channel, as
    access_channel read them without a lock) still hold, in one statement that locks
    the channel's row as a write's check does: a change of who may write there comes
    wholly before it (nothing is sent) or after it (the signal goes out first). Whether
    it was sent; if not, the caller judges again, under the lock."""
    return await q.notify_if_facts_hold(
        conn,
        channel_id=facts["channel_id"],
        user_id=facts["user_id"],
        facts=orjson.dumps(facts, default=str).decode(),  # (asyncpg's UUIDs as text)
        channel=EPHEMERAL_CHANNEL,
        payload=_signal_payload(event),
    )


async def signal_related(
    conn: asyncpg.Connection,
    event_type: EventType[P],
    user_id: UUID,
    channel_ids: list[UUID],
    shared: P,
    own: P,
) -> None:
    """Announce an event that is not kept (presence) about a user: `own` to the user's
    own connections, `shared` to everyone else who follows one of `channel_ids` (each
    connection hears it once per notification; a long channel list is split over
    several, each under PostgreSQL's 8000-byte limit)."""
    assert not event_type.stored and event_type.audience is Audience.RELATED, event_type.name
    payloads = [_signal_payload(Event(event_type.name, Stream.user(user_id), own))]
    ids = [str(c) for c in channel_ids]
    for start in range(0, len(ids), SIGNAL_CHANNELS):
        payloads.append(
            encode(
                {
                    "k": StreamKind.USER.value,
                    "e": str(user_id),
                    "t": event_type.name,
                    "d": dict(shared),
                    "c": ids[start : start + SIGNAL_CHANNELS],
                }
            )
        )
    # (one statement for them all: a user who sees 100,000 channels is 668 notifications,
    # which a round trip each made 668 statements of every presence change)
    await q.notify_many(conn, channel=EPHEMERAL_CHANNEL, payloads=payloads)


SIGNAL_CHANNELS = 150  # channel ids per notification (37 bytes each)
SIGNAL_INLINE = 7000  # bytes of a signal sent in one notification (PostgreSQL: < 8000)
SIGNAL_PIECE = 5000  # bytes per piece of a longer one (base64: 6668 characters)


async def signal_connection(
    conn: asyncpg.Connection, event_type: EventType[P], connection_id: UUID, payload: P
) -> None:
    """Announce an event that is not kept to one real-time connection, on whichever
    process holds it. One that does not fit in a notification goes in pieces, in one
    transaction (all of them or none), which the hub puts together again."""
    assert not event_type.stored and event_type.audience is Audience.CONNECTION, event_type.name
    body = encode({"t": event_type.name, "d": dict(payload)})
    raw = body.encode()
    to = str(connection_id)
    if len(raw) <= SIGNAL_INLINE:
        await q.notify(conn, channel=EPHEMERAL_CHANNEL, payload=f'{{"to":"{to}","m":{body}}}')
        return
    pieces = [raw[i : i + SIGNAL_PIECE] for i in range(0, len(raw), SIGNAL_PIECE)]
    key = uuid.uuid4().hex
    notes = [
        encode({"to": to, "x": key, "i": n, "n": len(pieces), "b": base64.b64encode(p).decode()})
        for n, p in enumerate(pieces)
    ]
    # (one statement: all of them or none, as a transaction of one each gave)
    await q.notify_many(conn, channel=EPHEMERAL_CHANNEL, payloads=notes)


# -- documentation (the README's table of event types is this, verbatim)


def _fields(payload: type[Any]) -> str:
    required: frozenset[str] = getattr(payload, "__required_keys__", frozenset())
    fields = [n for cls in reversed(payload.__mro__) for n in getattr(cls, "__annotations__", {})]
    names = [f"`{n}`" if n in required else f"`{n}`?" for n in dict.fromkeys(fields)]
    return ", ".join(names)


def markdown_table() -> str:
    """The README's table of every event type: `python -m xfchat.domain.events`."""
    audiences = {
        Audience.USER: "you",
        Audience.CHANNEL: "who may see the channel",
        Audience.RELATED: (
            "you, and whoever shares a conversation or a server with you (once for each"
            " they share: the copies are the same)"
        ),
        Audience.SERVER: "the server's members",
        Audience.CONNECTION: "one connection of yours",
    }
    rows = ["| event | to | payload | meaning |", "|---|---|---|---|"]
    for t in EVENT_TYPES.values():
        to = audiences[t.audience] + (
            "; in a server channel, or not above your highest in a conversation, you"
            if t.may_be_own
            else ""
        )
        rows.append(f"| `{t.name}` | {to} | {_fields(t.payload)} | {t.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
