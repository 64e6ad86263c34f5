"""Permission bit flags (stored as BIGINT on roles and channel overrides)."""

from __future__ import annotations

import enum

from xfchat.db.queries.access import AccessFacts, ServerFacts


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
    MODERATE_MEMBERS = 1 << 22
    MANAGE_WEBHOOKS = 1 << 23
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
    | Permission.MODERATE_MEMBERS
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
# A direct conversation closed to its user (a block between its two people, or the other
# takes messages from friends only) stays readable, not writable.
CLOSED_DIRECT = Permission.SEND_MESSAGES | Permission.ADD_REACTIONS | Permission.ATTACH_FILES
NONE = Permission(0)


# What a timed-out member keeps: reading. (Sending, reacting, joining voice, inviting and
# everything else wait until the timeout ends; the owner and administrators cannot be
# timed out.)
TIMED_OUT_KEEPS = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY


def compute_permissions(facts: AccessFacts) -> Permission:
    """A user's permissions in a channel, from the facts alone (no I/O).

    Conversations: everything in CONVERSATION for participants (less CLOSED_DIRECT
    in a closed direct conversation), nothing for anyone else.

    Server channels, in this order:
      1. not a member: nothing; the owner or ADMINISTRATOR: everything;
      2. base: @everyone's permissions | those of the member's roles;
      3. where the channel is synced with its category, the category's overrides, as in
         4-6;
      4. the channel's @everyone override: remove its denials, add its grants;
      5. its overrides for the member's roles: remove all their denials, then add all
         their grants (each unioned over the roles);
      6. its override for the member: remove, then add;
      7. a timed-out member keeps only TIMED_OUT_KEEPS;
      8. without VIEW_CHANNEL, nothing."""
    if facts.server_id is None:
        if not facts.participant:
            return NONE
        return CONVERSATION & ~CLOSED_DIRECT if facts.closed else CONVERSATION
    if not facts.member:
        return NONE
    if facts.owner or facts.base & _ADMINISTRATOR:
        return ALL
    perms = facts.base  # (plain ints until the end: flag arithmetic costs ten times more,
    for allow, deny in (  # and the seam computes this for every channel a user sees)
        (facts.category_everyone_allow, facts.category_everyone_deny),
        (facts.category_roles_allow, facts.category_roles_deny),
        (facts.category_member_allow, facts.category_member_deny),
        (facts.everyone_allow, facts.everyone_deny),
        (facts.roles_allow, facts.roles_deny),
        (facts.member_allow, facts.member_deny),
    ):
        perms = (perms & ~deny) | allow
    if facts.timed_out:
        perms &= _TIMED_OUT_KEEPS
    if not perms & _VIEW_CHANNEL:
        return NONE
    return Permission(perms & _ALL)


_ADMINISTRATOR = int(Permission.ADMINISTRATOR)
_TIMED_OUT_KEEPS = int(TIMED_OUT_KEEPS)
_VIEW_CHANNEL = int(Permission.VIEW_CHANNEL)
_ALL = int(ALL)


def compute_server_permissions(facts: ServerFacts) -> Permission:
    """A member's server-wide permissions (those of @everyone and their roles; all of
    them for the owner and ADMINISTRATOR; TIMED_OUT_KEEPS while timed out); nothing for
    anyone else."""
    if not facts.member:
        return NONE
    if facts.owner or facts.base & Permission.ADMINISTRATOR:
        return ALL
    if facts.timed_out:
        return Permission(facts.base & TIMED_OUT_KEEPS)
    return Permission(facts.base & ALL)
