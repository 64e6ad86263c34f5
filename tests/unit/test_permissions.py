"""The one permission calculation, on facts alone."""

from __future__ import annotations

import uuid
from dataclasses import replace

from xfchat.db.queries.access import AccessFacts
from xfchat.domain.permissions import (
    ALL,
    BLOCKED_DIRECT,
    CONVERSATION,
    EVERYONE_DEFAULT,
    NONE,
    Permission,
    compute_permissions,
)

P = Permission
CONVERSATION_FACTS = AccessFacts(
    channel_id=uuid.uuid4(),
    user_id=uuid.uuid4(),
    kind="group",
    server_id=None,
    participant=True,
    blocked=False,
    member=False,
    owner=False,
    base=0,
    everyone_allow=0,
    everyone_deny=0,
    roles_allow=0,
    roles_deny=0,
    member_allow=0,
    member_deny=0,
)
SERVER_FACTS = replace(
    CONVERSATION_FACTS,
    kind="text",
    server_id=uuid.uuid4(),
    participant=False,
    member=True,
    base=int(EVERYONE_DEFAULT),
)


def test_a_participant_may_do_everything_a_conversation_allows() -> None:
    assert compute_permissions(CONVERSATION_FACTS) == CONVERSATION
    assert compute_permissions(replace(CONVERSATION_FACTS, participant=False)) == NONE


def test_a_block_leaves_a_direct_conversation_readable_not_writable() -> None:
    perms = compute_permissions(replace(CONVERSATION_FACTS, kind="direct", blocked=True))
    assert perms & P.VIEW_CHANNEL and perms & P.READ_MESSAGE_HISTORY
    assert not perms & BLOCKED_DIRECT


def test_server_members_get_everyone_and_their_roles() -> None:
    assert compute_permissions(SERVER_FACTS) == EVERYONE_DEFAULT
    with_role = replace(SERVER_FACTS, base=int(EVERYONE_DEFAULT | P.MANAGE_MESSAGES))
    assert compute_permissions(with_role) & P.MANAGE_MESSAGES
    assert compute_permissions(replace(SERVER_FACTS, member=False)) == NONE


def test_the_owner_and_administrators_get_everything_whatever_the_overrides() -> None:
    hidden = replace(SERVER_FACTS, everyone_deny=int(P.VIEW_CHANNEL))
    assert compute_permissions(replace(hidden, owner=True)) == ALL
    assert compute_permissions(replace(hidden, base=int(P.ADMINISTRATOR))) == ALL


def test_overrides_apply_everyone_then_roles_then_the_member() -> None:
    send = int(P.SEND_MESSAGES)
    denied = replace(SERVER_FACTS, everyone_deny=send)
    assert not compute_permissions(denied) & P.SEND_MESSAGES
    role_allows = replace(denied, roles_allow=send)
    assert compute_permissions(role_allows) & P.SEND_MESSAGES
    member_denies = replace(role_allows, member_deny=send)
    assert not compute_permissions(member_denies) & P.SEND_MESSAGES
    member_allows = replace(SERVER_FACTS, roles_deny=send, member_allow=send)
    assert compute_permissions(member_allows) & P.SEND_MESSAGES


def test_without_view_channel_nothing_else_counts() -> None:
    hidden = replace(SERVER_FACTS, everyone_deny=int(P.VIEW_CHANNEL))
    assert compute_permissions(hidden) == NONE
    shown_to_role = replace(hidden, roles_allow=int(P.VIEW_CHANNEL))
    assert compute_permissions(shown_to_role) & P.VIEW_CHANNEL
