"""Permission bit flags (stored as BIGINT on roles and channel overrides)."""

from __future__ import annotations

import enum

from xfchat.db.queries.access import AccessFacts


class Permission(enum.IntFlag):
    VIEW_CHANNEL = 1 << 0
    SEND_MESSAGES = 1 << 1
    READ_MESSAGE_HISTORY = 1 << 2
    ADD_REACTIONS = 1 << 3
    ATTACH_FILES = 1 << 4
    EMBED_LINKS = 1 << 5
    MENTION_EVERYONE = 1 << 6
    MANAGE_MESSAGES = 1 << 7
    CONNECT = 1 << 8
    SPEAK = 1 << 9
    MUTE_MEMBERS = 1 << 10
    DEAFEN_MEMBERS = 1 << 11
    MOVE_MEMBERS = 1 << 12
    CREATE_INVITE = 1 << 13
    CHANGE_NICKNAME = 1 << 14
    MANAGE_NICKNAMES = 1 << 15
    KICK_MEMBERS = 1 << 16
    BAN_MEMBERS = 1 << 17
    MANAGE_CHANNELS = 1 << 18
    MANAGE_ROLES = 1 << 19
    MANAGE_SERVER = 1 << 20
    VIEW_AUDIT_LOG = 1 << 21
    ADMINISTRATOR = 1 << 40


EVERYONE_DEFAULT = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.ATTACH_FILES
    | Permission.EMBED_LINKS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.CREATE_INVITE
    | Permission.CHANGE_NICKNAME
)

MODERATOR_DEFAULT = (
    EVERYONE_DEFAULT
    | Permission.MANAGE_MESSAGES
    | Permission.MENTION_EVERYONE
    | Permission.MUTE_MEMBERS
    | Permission.DEAFEN_MEMBERS
    | Permission.MOVE_MEMBERS
    | Permission.MANAGE_NICKNAMES
    | Permission.KICK_MEMBERS
    | Permission.VIEW_AUDIT_LOG
)

ALL = Permission(sum(p.value for p in Permission))

# What taking part in a conversation lets you do (there are no roles in conversations).
CONVERSATION = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.ATTACH_FILES
    | Permission.EMBED_LINKS
)
# A block between the two people of a direct conversation leaves it readable, not writable.
BLOCKED_DIRECT = Permission.SEND_MESSAGES | Permission.ADD_REACTIONS | Permission.ATTACH_FILES
NONE = Permission(0)


def compute_permissions(facts: AccessFacts) -> Permission:
    """A user's permissions in a channel, from the facts alone (no I/O).

    Conversations: everything in CONVERSATION for participants (less BLOCKED_DIRECT
    across a block), nothing for anyone else. Server channels, as Discord does it: the
    owner and ADMINISTRATOR get everything; otherwise @everyone's and the member's roles'
    permissions, then the channel's overrides for @everyone, for the member's roles
    (combined) and for the member, each removing its denials and adding its grants in
    that order. Without VIEW_CHANNEL, nothing."""
    if facts.server_id is None:
        if not facts.participant:
            return NONE
        return CONVERSATION & ~BLOCKED_DIRECT if facts.blocked else CONVERSATION
    if not facts.member:
        return NONE
    if facts.owner or facts.base & Permission.ADMINISTRATOR:
        return ALL
    perms = facts.base
    for allow, deny in (
        (facts.everyone_allow, facts.everyone_deny),
        (facts.roles_allow, facts.roles_deny),
        (facts.member_allow, facts.member_deny),
    ):
        perms = (perms & ~deny) | allow
    if not perms & Permission.VIEW_CHANNEL:
        return NONE
    return Permission(perms & ALL)
