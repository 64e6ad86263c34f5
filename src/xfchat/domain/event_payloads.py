"""The payload of every event type (domain/events.py): what each event's `data` holds.
A TypedDict per shape; the writers are type-checked against them, the README's event
table is generated from them, and the API's response models reuse them."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from xfchat.domain.ice import IceServerPayload


class AuthorPayload(TypedDict):
    id: str
    username: str | None
    display_name: str | None
    avatar_url: str | None
    deleted: bool  # the account was deleted since (as its public profile says)
    # A webhook's message: true, and the author is the webhook's name and avatar as the
    # message was posted (id: the webhook's; `deleted`: the webhook was deleted since)
    bot: NotRequired[bool]


class PublicUserPayload(TypedDict):
    """What anyone may see of a user (never the email; nor the custom status, which is
    presence: PresencePayload)."""

    id: str
    username: str
    display_name: str | None
    avatar_url: str | None
    created_at: str
    deleted: bool  # the account was deleted: a placeholder name, nothing else of it


class ReplyPreviewPayload(TypedDict):
    """The message replied to, as a reply shows it: its author and the start of its
    text (empty once it is deleted)."""

    id: str
    author: AuthorPayload | None
    content: str
    deleted: bool


class _Reaction(TypedDict):
    emoji: str
    count: int


class ReactionPayload(_Reaction, total=False):
    me: bool  # in answers to the reader only, never in events


class AttachmentPayload(TypedDict):
    id: str
    filename: str
    content_type: str
    size: int
    width: int | None  # images only
    height: int | None
    url: str  # GET it with your token: the file
    thumbnail_url: str | None  # images only: at most 400x400, PNG or JPEG
    thumbnail_width: int | None
    thumbnail_height: int | None


class MessagePayload(TypedDict):
    id: str
    channel_id: str
    seq: int
    kind: str  # default; pin: "X pinned a message" (reply_to_id: the message)
    author: AuthorPayload | None
    webhook_id: str | None  # the webhook that posted it (None: a user, or deleted since)
    content: str
    created_at: str
    edited_at: str | None
    deleted: bool
    deleted_at: str | None
    reply_to_id: str | None
    reply_to: ReplyPreviewPayload | None
    mentions: list[str]
    mention_roles: list[str]
    mention_everyone: bool
    nonce: str | None
    pinned: bool
    reactions: list[ReactionPayload]
    attachments: list[AttachmentPayload]


class MentionsPayload(TypedDict):
    """Whom a message mentioned: by id, by role, `@everyone` (`@here` too)."""

    mentions: list[str]
    mention_roles: list[str]
    mention_everyone: bool


class MessageUpdatedPayload(MessagePayload):
    # Whom it mentioned before the edit: with the new `mentions`, `mention_roles` and
    # `mention_everyone`, a reader tells whether its mention count changes.
    previous_mentions: MentionsPayload


class MessageDeletedPayload(TypedDict):
    id: str
    channel_id: str
    seq: int
    deleted_at: str  # as its tombstone shows it from then on
    # What the message counted for, as it was: a reader whose last read is before
    # `seq` tells from these whether its unread and mention counts drop.
    author_id: str | None
    mentions: list[str]
    mention_roles: list[str]
    mention_everyone: bool


class ReactionChangePayload(TypedDict):
    message_id: str
    channel_id: str
    user_id: str
    emoji: str


class PinPayload(TypedDict):
    channel_id: str
    message_id: str
    pinned_by: str  # who pinned or unpinned it
    pinned_at: str | None  # None: unpinned


class ReadStatePayload(TypedDict):
    channel_id: str
    user_id: str
    last_read_seq: int


class TypingPayload(TypedDict):
    channel_id: str
    user_id: str
    expires_in: int


class ConversationPayload(TypedDict):
    id: str
    kind: str
    name: str | None
    owner_id: str | None
    participant_ids: list[str]
    participants: list[PublicUserPayload]
    created_at: str


class ConversationAddedPayload(ConversationPayload):
    """A group as the one just added to it sees it: with their read position there (kept
    from an earlier time in it, else 0) and what is unread after it, as
    `GET /api/conversations/{id}` counts them: the messages are already there, so no
    event brings them to count."""

    last_read_seq: int
    unread: int
    mention_count: int


class ConversationRemovedPayload(TypedDict):
    id: str


class _Participant(TypedDict):
    channel_id: str
    user_id: str


class ParticipantPayload(_Participant, total=False):
    user: PublicUserPayload  # participant.added: who


class _FriendRequest(TypedDict):
    id: str
    from_user_id: str
    to_user_id: str
    status: str
    created_at: str
    user: PublicUserPayload  # the user at the other end, from the receiver's side


class FriendRequestPayload(_FriendRequest, total=False):
    conversation_id: str  # accepted: the pair's direct conversation


class _Friend(TypedDict):
    user_id: str


class FriendPayload(_Friend, total=False):
    user: PublicUserPayload  # friend.added: who
    conversation_id: str


class _UserRef(TypedDict):
    user_id: str


class UserRefPayload(_UserRef, total=False):
    user: PublicUserPayload  # block.added: who


class PresencePayload(TypedDict):
    user_id: str
    status: str  # online, idle, dnd, offline (invisible shows as offline to others)
    # The custom status: only here, never in a profile (none while offline or invisible).
    status_text: str | None


class PrivacyPayload(TypedDict):
    direct_messages: str  # everyone, friends


class EmailPayload(TypedDict):
    email: str  # the account's email, as stored (private: told to its owner alone)


class MuteTargetPayload(TypedDict):
    """What a mute is of: a channel (a server's text channel, or a conversation: its
    id is its channel's) or a whole server."""

    kind: Literal["channel", "server"]
    id: str


class MutePayload(MuteTargetPayload):
    """One of your mutes: the target's unread messages are not shown as unread (its
    mentions of you still are), until `until` (null: until you unmute it)."""

    until: str | None


class NotificationSettingPayload(MuteTargetPayload):
    """One of your notification settings of a channel or a server: which of its new
    messages your clients notify you of (`all`, `mentions`: those mentioning you, a
    role of yours, or @everyone / @here unless `suppress_everyone`; `nothing`).
    `suppress_everyone` is a server's choice (always false for a channel)."""

    level: Literal["all", "mentions", "nothing"]
    suppress_everyone: bool


class SessionRevokedPayload(TypedDict):
    session_id: str
    reason: str


class RolePayload(TypedDict):
    id: str
    server_id: str
    name: str
    permissions: str  # the bit flags as a decimal string (64 bits do not fit a JS number)
    position: int
    color: int
    hoist: bool
    mentionable: bool
    is_default: bool  # @everyone


class OverridePayload(TypedDict):
    kind: str  # "role" or "member"
    id: str  # the role's or the member's id
    allow: str
    deny: str


class ServerChannelPayload(TypedDict):
    id: str
    server_id: str
    kind: str  # text, voice, category
    name: str
    topic: str | None
    position: int
    parent_id: str | None
    rate_limit_per_user: int  # slowmode seconds
    user_limit: int | None  # voice
    permissions_synced: bool
    overrides: list[OverridePayload]
    # The overrides of the category it follows (step 3 of the permissions: where it is
    # synced and has one, else empty), shown with the channel: one who sees the channel
    # but not its category computes their permissions from these.
    category_overrides: list[OverridePayload]
    created_at: str


class ServerPayload(TypedDict):
    id: str
    name: str
    description: str | None
    icon_url: str | None
    owner_id: str
    member_count: int
    created_at: str
    search_language: str  # what its messages are stemmed in (README, "Search")
    # its members' notification level where they set none (README, "Notification settings")
    default_notifications: Literal["all", "mentions"]


class MemberPayload(TypedDict):
    server_id: str
    user: PublicUserPayload
    nickname: str | None
    role_ids: list[str]
    joined_at: str
    timed_out_until: str | None
    mute: bool  # server-muted in voice (MUTE_MEMBERS), in voice or not
    deaf: bool  # server-deafened likewise (DEAFEN_MEMBERS)


class VoiceStatePayload(TypedDict):
    """Someone in a voice channel, or in a conversation's call."""

    user_id: str
    channel_id: str
    server_id: str | None  # None: a conversation's call
    connection_id: str  # the gateway connection that holds it (see `voice.connected`)
    self_mute: bool
    self_deaf: bool
    self_video: bool
    server_mute: bool  # by a moderator (MUTE_MEMBERS)
    server_deaf: bool  # by a moderator (DEAFEN_MEMBERS)
    suppress: bool  # they lack SPEAK in the channel: treat as a server mute
    joined_at: str  # when they joined this channel


class VoiceConnectedPayload(TypedDict):
    """The answer to a join (gateway op 4), to the joining connection only."""

    state: VoiceStatePayload  # yours
    voice_states: list[VoiceStatePayload]  # everyone's in the channel, yours too
    ice_servers: list[IceServerPayload]
    ice_expires_at: str | None  # when the TURN credential stops working (None: no TURN)
    ice_transport_policy: Literal["all", "relay"]


class _VoiceError(TypedDict):
    op: int  # 4 or 12
    code: str
    message: str


class VoiceErrorPayload(_VoiceError, total=False):
    """A voice op refused or failed, as the HTTP API's error body says it."""

    field: str
    errors: list[dict[str, str]]
    missing: str
    to: str  # the addressee of a refused signal
    retry_after: float


class ChannelUnreadPayload(TypedDict):
    channel_id: str
    last_read_seq: int  # how far you have read
    unread: int  # others' live messages after that, counted up to 100
    mention_count: int  # ... of which mention you (by name, by a role of yours, @everyone)


class ServerJoinedPayload(ServerPayload):
    channels: list[ServerChannelPayload]  # those you may see
    roles: list[RolePayload]
    member: MemberPayload  # you
    read_states: list[ChannelUnreadPayload]  # yours, in each text channel you may see
    voice_states: list[VoiceStatePayload]  # who is in the voice channels you may see


class ServerLeftPayload(TypedDict):
    id: str
    reason: str  # left, kicked, banned, deleted
    channel_ids: list[str]


class ChannelsRevealedPayload(TypedDict):
    server_id: str
    reason: str  # created, permissions
    channel_ids: list[str]
    # Their payloads; empty when the change revealed too much to repeat them to each
    # member: each then follows as the channel's `channel.updated`.
    channels: list[ServerChannelPayload]
    # Yours in each text channel among them, as `ready` counts it; empty with `channels`.
    read_states: list[ChannelUnreadPayload]


class ChannelsHiddenPayload(TypedDict):
    server_id: str
    reason: str  # deleted, permissions
    channel_ids: list[str]


class RoleDeletedPayload(TypedDict):
    server_id: str
    id: str


class MemberRemovedPayload(TypedDict):
    server_id: str
    user_id: str
    reason: str  # left, kicked, banned


class VoiceStateUpdatedPayload(VoiceStatePayload):
    left: bool  # True: they are no longer in `channel_id` (the rest as it was)


# `from` is a Python keyword: the functional form.
VoiceSignalPayload = TypedDict(
    "VoiceSignalPayload",
    {
        "channel_id": str,  # the voice channel (or call) you are both in
        "from": str,  # the sender's user id
        "kind": str,  # offer, answer, candidate
        "data": Any,  # as the sender gave it (an SDP description, an ICE candidate)
    },
)
