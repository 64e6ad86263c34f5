"""The one permission calculation, on facts alone: examples, then properties checked
exhaustively (every combination of the six override layers for one bit) and on random
64-bit masks against a reference written the other way round (per bit: the last layer
that says anything about it decides)."""

from __future__ import annotations

import itertools
import uuid

from hypothesis import given
from hypothesis import strategies as st

from xfchat.db.queries.access import AccessFacts
from xfchat.domain.permissions import (
    ALL,
    CLOSED_DIRECT,
    CONVERSATION,
    EVERYONE_DEFAULT,
    NONE,
    TIMED_OUT_KEEPS,
    Permission,
    compute_permissions,
)

P = Permission


def _replace(facts: AccessFacts, **changes: object) -> AccessFacts:
    return facts._replace(**changes)  # type: ignore[arg-type]


CONVERSATION_FACTS = AccessFacts(
    channel_id=uuid.uuid4(),
    user_id=uuid.uuid4(),
    kind="group",
    server_id=None,
    participant=True,
    closed=False,
    member=False,
    owner=False,
    base=0,
    everyone_allow=0,
    everyone_deny=0,
    roles_allow=0,
    roles_deny=0,
    member_allow=0,
    member_deny=0,
    category_everyone_allow=0,
    category_everyone_deny=0,
    category_roles_allow=0,
    category_roles_deny=0,
    category_member_allow=0,
    category_member_deny=0,
    timed_out=False,
)
SERVER_FACTS = _replace(
    CONVERSATION_FACTS,
    kind="text",
    server_id=uuid.uuid4(),
    participant=False,
    member=True,
    base=int(EVERYONE_DEFAULT),
)


def test_a_participant_may_do_everything_a_conversation_allows() -> None:
    assert compute_permissions(CONVERSATION_FACTS) == CONVERSATION
    assert compute_permissions(_replace(CONVERSATION_FACTS, participant=False)) == NONE


def test_a_block_leaves_a_direct_conversation_readable_not_writable() -> None:
    perms = compute_permissions(_replace(CONVERSATION_FACTS, kind="direct", closed=True))
    assert perms & P.VIEW_CHANNEL and perms & P.READ_MESSAGE_HISTORY
    assert not perms & CLOSED_DIRECT


def test_server_members_get_everyone_and_their_roles() -> None:
    assert compute_permissions(SERVER_FACTS) == EVERYONE_DEFAULT
    with_role = _replace(SERVER_FACTS, base=int(EVERYONE_DEFAULT | P.MANAGE_MESSAGES))
    assert compute_permissions(with_role) & P.MANAGE_MESSAGES
    assert compute_permissions(_replace(SERVER_FACTS, member=False)) == NONE


def test_the_owner_and_administrators_get_everything_whatever_the_overrides() -> None:
    hidden = _replace(SERVER_FACTS, everyone_deny=int(P.VIEW_CHANNEL))
    assert compute_permissions(_replace(hidden, owner=True)) == ALL
    assert compute_permissions(_replace(hidden, base=int(P.ADMINISTRATOR))) == ALL


def test_overrides_apply_everyone_then_roles_then_the_member() -> None:
    send = int(P.SEND_MESSAGES)
    denied = _replace(SERVER_FACTS, everyone_deny=send)
    assert not compute_permissions(denied) & P.SEND_MESSAGES
    role_allows = _replace(denied, roles_allow=send)
    assert compute_permissions(role_allows) & P.SEND_MESSAGES
    member_denies = _replace(role_allows, member_deny=send)
    assert not compute_permissions(member_denies) & P.SEND_MESSAGES
    member_allows = _replace(SERVER_FACTS, roles_deny=send, member_allow=send)
    assert compute_permissions(member_allows) & P.SEND_MESSAGES


def test_without_view_channel_nothing_else_counts() -> None:
    hidden = _replace(SERVER_FACTS, everyone_deny=int(P.VIEW_CHANNEL))
    assert compute_permissions(hidden) == NONE
    shown_to_role = _replace(hidden, roles_allow=int(P.VIEW_CHANNEL))
    assert compute_permissions(shown_to_role) & P.VIEW_CHANNEL


# The layers in the documented order: category (@everyone, roles, member) where synced,
# then the channel's own (@everyone, roles, member).
LAYERS = [
    ("category_everyone_allow", "category_everyone_deny"),
    ("category_roles_allow", "category_roles_deny"),
    ("category_member_allow", "category_member_deny"),
    ("everyone_allow", "everyone_deny"),
    ("roles_allow", "roles_deny"),
    ("member_allow", "member_deny"),
]


def reference(facts: AccessFacts) -> int:
    """Per bit: base, then each layer in order that names the bit sets it (within a
    layer a grant beats a denial: denials are removed first, grants added after)."""
    if not facts.member:
        return 0
    if facts.owner or facts.base & P.ADMINISTRATOR:
        return int(ALL)
    out = 0
    for bit in Permission:
        value = bool(facts.base & bit)
        for allow, deny in LAYERS:
            if getattr(facts, allow) & bit:
                value = True
            elif getattr(facts, deny) & bit:
                value = False
        if value:
            out |= int(bit)
    if facts.timed_out:
        out &= int(TIMED_OUT_KEEPS)
    return out if out & P.VIEW_CHANNEL else 0


def test_every_combination_of_layers_for_one_bit_matches_the_reference() -> None:
    view = int(P.VIEW_CHANNEL)
    for base, timed_out, *layers in itertools.product(
        (0, view), (False, True), *[("none", "allow", "deny")] * len(LAYERS)
    ):
        fields: dict[str, object] = {"base": base, "timed_out": timed_out}
        for (allow, deny), say in zip(LAYERS, layers, strict=True):
            fields[allow] = view if say == "allow" else 0
            fields[deny] = view if say == "deny" else 0
        facts = _replace(SERVER_FACTS, **fields)  # type: ignore[arg-type]
        said = [s for s in layers if s != "none"]
        expected_visible = (said[-1] == "allow") if said else bool(base)
        assert bool(compute_permissions(facts)) == expected_visible, fields
        assert int(compute_permissions(facts)) == reference(facts), fields


masks = st.integers(min_value=0, max_value=int(ALL)).map(
    lambda n: n & int(ALL) & ~int(P.ADMINISTRATOR)
)


@given(
    base=masks,
    layers=st.lists(st.tuples(masks, masks), min_size=len(LAYERS), max_size=len(LAYERS)),
    timed_out=st.booleans(),
    owner=st.booleans(),
    admin=st.booleans(),
    member=st.booleans(),
)
def test_the_calculation_matches_the_reference_on_random_masks(
    base: int,
    layers: list[tuple[int, int]],
    timed_out: bool,
    owner: bool,
    admin: bool,
    member: bool,
) -> None:
    fields: dict[str, object] = {
        "base": base | (int(P.ADMINISTRATOR) if admin else 0),
        "timed_out": timed_out,
        "owner": owner,
        "member": member,
    }
    for (allow, deny), (a, d) in zip(LAYERS, layers, strict=True):
        fields[allow], fields[deny] = a, d & ~a  # stored overrides never overlap
    facts = _replace(SERVER_FACTS, **fields)  # type: ignore[arg-type]
    perms = compute_permissions(facts)
    assert int(perms) == reference(facts)
    if member and (owner or admin):
        assert perms == ALL  # the owner and administrators bypass every override
    if not member:
        assert perms == NONE


def test_a_member_override_beats_role_overrides_and_roles_beat_everyone() -> None:
    view = int(P.VIEW_CHANNEL)
    roles_deny = _replace(SERVER_FACTS, roles_deny=view)
    assert compute_permissions(roles_deny) == NONE
    assert compute_permissions(_replace(roles_deny, member_allow=view)) & P.VIEW_CHANNEL
    everyone_deny = _replace(SERVER_FACTS, everyone_deny=view, roles_allow=view)
    assert compute_permissions(everyone_deny) & P.VIEW_CHANNEL


def test_a_synced_category_comes_before_the_channels_own_overrides() -> None:
    view = int(P.VIEW_CHANNEL)
    hidden_by_category = _replace(SERVER_FACTS, category_everyone_deny=view)
    assert compute_permissions(hidden_by_category) == NONE
    assert compute_permissions(_replace(hidden_by_category, everyone_allow=view))


def test_a_timed_out_member_can_read_but_not_write() -> None:
    perms = compute_permissions(_replace(SERVER_FACTS, timed_out=True))
    assert perms == TIMED_OUT_KEEPS
    admin = _replace(SERVER_FACTS, timed_out=True, base=int(P.ADMINISTRATOR))
    assert compute_permissions(admin) == ALL
