"""Permission bit flags (stored as BIGINT on roles and channel overrides)."""

from __future__ import annotations

import enum


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
