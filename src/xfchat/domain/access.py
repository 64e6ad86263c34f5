"""The channel-access seam: who may see a channel and do what in it.

Every read, write and delivery decides access here, and nowhere else: `access_channel`
for one channel (routes, the send batch), `visible_channels` for the set a real-time
connection follows, `viewers_among` for the people a message may mention or whose read
receipts show. They read the facts (db/queries/access.py) and apply the one pure
calculation, `compute_permissions` (domain/permissions.py). Conversations are its simple
case (taking part is everything; in a direct conversation whose other person takes no
messages from you, a block or their choice, writing is taken away); server channels add roles and per-channel overrides.

A channel you may not see gets the same 404 as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import access as q
from xfchat.db.queries import channels as channels_q
from xfchat.domain.accounts import Actor, session_ended
from xfchat.domain.permissions import (
    CLOSED_DIRECT,
    Permission,
    compute_permissions,
    compute_server_permissions,
)
from xfchat.errors import Forbidden, NotFound, XFChatError

MESSAGE_KINDS = frozenset({"text", "direct", "group"})  # channels that carry messages


@dataclass(frozen=True)
class ChannelAccess:
    channel: channels_q.ChannelRow
    permissions: Permission
    closed: bool  # a direct conversation whose other person takes no messages from the actor
    facts: q.AccessFacts | None = None  # what it was judged from

    def can(self, need: Permission) -> bool:
        return need & self.permissions == need


def cannot_message() -> Forbidden:
    """The one answer to every refused direct message, whatever the reason (a block
    either way, or the other takes them from friends only): it reveals neither."""
    return Forbidden("this user does not take direct messages from you", code="CANNOT_MESSAGE_USER")


def user_deleted() -> Forbidden:
    """The answer to anything sent to a deleted account: a message in a direct
    conversation, a new one, a friend request, a place in a group."""
    return Forbidden("that account was deleted", code="USER_DELETED")


async def direct_refused(conn: asyncpg.Connection, sender: UUID, recipient: UUID) -> bool:
    """Whether `recipient` takes no direct messages from `sender` (the rule of
    db/queries/access.py's DIRECT_CLOSED_RULE, for a conversation not yet opened)."""
    return await q.get_direct_refused(conn, sender=sender, recipient=recipient)


async def direct_channels_with_strangers(conn: asyncpg.Connection, user_id: UUID) -> list[UUID]:
    """The user's direct conversations whose other person is not their friend: those
    their choice of whom to take messages from opens or closes."""
    return await q.list_direct_channels_with_strangers(conn, user_id=user_id)


async def presence_peers_among(
    conn: asyncpg.Connection, user_id: UUID, among: list[UUID]
) -> list[UUID]:
    """Those of `among` whose presence the user may see: friends, group peers, members
    of a server the user is in (as that server's member list shows them)."""
    return await q.list_presence_peers_among(conn, user_id=user_id, among=among)


def channel_not_found() -> NotFound:
    return NotFound("no such channel", code="CHANNEL_NOT_FOUND")


def refusal(facts: q.AccessFacts, need: Permission) -> XFChatError | None:
    """Why these facts do not allow `need` (None if they do): 404 if the channel is not
    visible, else 403 naming what is missing."""
    perms = compute_permissions(facts)
    if not perms & Permission.VIEW_CHANNEL:
        return channel_not_found()
    lacking = Permission(need & ~perms)
    if not lacking:
        return None
    if facts.closed and lacking & CLOSED_DIRECT:
        return user_deleted() if facts.peer_deleted else cannot_message()
    if facts.timed_out:
        return timed_out()
    return missing(need, perms, "in this channel")


# A permission, or what to ask of a given channel (e.g. one thing in a server channel,
# another in a conversation).
Need = Permission | Callable[[channels_q.ChannelRow], Permission]


def timed_out() -> Forbidden:
    return Forbidden("you are timed out in this server", code="TIMED_OUT")


async def access_channel(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    *,
    need: Need = Permission.VIEW_CHANNEL,
    lock: bool = False,
    share: bool = False,
) -> ChannelAccess:
    """The channel and the actor's permissions in it, if they include `need` (or what
    `need` asks of this channel, when it depends on the channel's kind). With `lock`,
    the channel's row stays locked FOR UPDATE until the caller's transaction ends (for
    changes of who may see it); with `share`, FOR KEY SHARE (for a write others are
    told of: a change of who may see the channel then comes wholly before or after it,
    never between the check and the write).

    Raises: NotFound (CHANNEL_NOT_FOUND) if it does not exist or is not visible;
    Forbidden (MISSING_PERMISSIONS, or CANNOT_MESSAGE_USER in a closed direct conversation);
    with `share`, Unauthorized (SESSION_REVOKED) if the actor's account was deleted (a
    write that passed its session's check as the deletion committed: it still takes
    part in its direct conversations)."""
    found = await q.get_channel_access(
        conn, channel_id=channel_id, user_id=actor.user_id, lock=lock, share=share
    )
    if found is None:
        raise channel_not_found()
    channel, facts = found
    if share and facts.account_deleted:
        raise session_ended()
    needed = need(channel) if callable(need) else need
    error = refusal(facts, needed | Permission.VIEW_CHANNEL)
    if error is not None:
        raise error
    return ChannelAccess(channel, compute_permissions(facts), facts.closed, facts)


def override_bits(rows: list[channels_q.OverrideRow]) -> int:
    """Every permission some of these overrides allow or deny."""
    bits = 0
    for row in rows:
        bits |= row.allow | row.deny
    return bits


async def may_change_overrides(
    conn: asyncpg.Connection, actor: Actor, channel_ids: list[UUID], bits: int
) -> None:
    """Changing which overrides apply in these channels (setting or removing one, a
    category's reaching its synced channels, a channel joining or leaving its category's)
    needs MANAGE_ROLES in each, and every permission the change allows, denies or lifts
    held there: nobody grants what they do not hold, as Discord judges it per channel.

    Raises: Forbidden (MISSING_PERMISSIONS, with `missing`)."""
    need = Permission.MANAGE_ROLES | Permission(bits)
    await holds_in_channels(
        conn, actor, dict.fromkeys(channel_ids, need), "in every channel the change applies to"
    )


async def holds_in_channels(
    conn: asyncpg.Connection, actor: Actor, needs: dict[UUID, Permission], where: str
) -> None:
    """The actor holds, in each of these channels, what `needs` asks there; a channel
    they cannot see holds nothing (the refusal names what is missing, `where`, never
    the channel). One read for them all.

    Raises: Forbidden (MISSING_PERMISSIONS, with `missing`)."""
    facts = {
        f.channel_id: f
        for f in await q.list_facts_in_channels(
            conn, channel_ids=list(needs), user_id=actor.user_id
        )
    }
    for channel_id, need in needs.items():
        found = facts.get(channel_id)
        held = compute_permissions(found) if found is not None else Permission(0)
        if Permission.VIEW_CHANNEL not in held:
            held = Permission(0)
        if need & ~held:
            raise missing(need, held, where)


async def permissions_in_channels(
    conn: asyncpg.Connection, user_id: UUID, channel_ids: list[UUID]
) -> dict[UUID, Permission]:
    """A user's permissions in each of these channels that they may see (one read);
    channels they may not see are left out."""
    out: dict[UUID, Permission] = {}
    for facts in await q.list_facts_in_channels(conn, channel_ids=channel_ids, user_id=user_id):
        perms = compute_permissions(facts)
        if perms & Permission.VIEW_CHANNEL:
            out[facts.channel_id] = perms
    return out


@dataclass(frozen=True)
class VisibleChannel:
    channel_id: UUID
    kind: str
    server_id: UUID | None
    permissions: Permission


def _visible(facts: list[q.AccessFacts]) -> dict[UUID, VisibleChannel]:
    """Of these facts, the channels they let their user see, with the permissions."""
    out: dict[UUID, VisibleChannel] = {}
    for f in facts:
        perms = compute_permissions(f)
        if perms & Permission.VIEW_CHANNEL:
            out[f.channel_id] = VisibleChannel(f.channel_id, f.kind, f.server_id, perms)
    return out


async def visible_channels(conn: asyncpg.Connection, user_id: UUID) -> dict[UUID, VisibleChannel]:
    """Every channel the user may see, with their permissions in it."""
    return _visible(await q.list_candidate_facts(conn, user_id=user_id))


async def visible_conversations(
    conn: asyncpg.Connection, user_id: UUID
) -> dict[UUID, VisibleChannel]:
    """visible_channels, of the user's conversations alone (at most
    MAX_CONVERSATIONS_PER_USER, and as many direct ones as they block openers of: see
    users_at_conversation_limit), without reading the channels of their servers."""
    return _visible(await q.list_conversation_facts(conn, user_id=user_id))


async def conversations_taken_part_in(
    conn: asyncpg.Connection, user_id: UUID, kind: str
) -> list[UUID]:
    """The ids of visible_conversations of this kind (a participant sees their
    conversation, a closed direct one too), in id order, without their facts: a
    thousand groups' facts cost 130 ms, their ids a millisecond."""
    return await q.list_conversation_ids(conn, user_id=user_id, kind=kind)


async def member_servers(conn: asyncpg.Connection, user_id: UUID) -> list[UUID]:
    """The servers the user is a member of (their streams: roles, members, settings)."""
    return await q.list_member_servers(conn, user_id=user_id)


async def viewers_among(
    conn: asyncpg.Connection, channel_id: UUID, user_ids: list[UUID]
) -> list[UUID]:
    """Those of `user_ids` who may see the channel, in the order given."""
    if not user_ids:
        return []
    facts = await q.list_access_facts(conn, channel_id=channel_id, user_ids=user_ids)
    seeing = {f.user_id for f in facts if compute_permissions(f) & Permission.VIEW_CHANNEL}
    return [u for u in user_ids if u in seeing]


async def permissions_in(conn: asyncpg.Connection, channel_id: UUID, user_id: UUID) -> Permission:
    """A user's permissions in a channel (none where they may not see it)."""
    facts = await q.list_access_facts(conn, channel_id=channel_id, user_ids=[user_id])
    perms = compute_permissions(facts[0]) if facts else Permission(0)
    return perms if perms & Permission.VIEW_CHANNEL else Permission(0)


@dataclass(frozen=True)
class InVoice:
    """Someone in a voice channel of a server: may they speak there, and are they
    marked as not (their state's `suppress`)?"""

    user_id: UUID
    channel_id: UUID
    speaks: bool
    suppressed: bool


async def in_voice_of_server(conn: asyncpg.Connection, server_id: UUID) -> list[InVoice]:
    """Everyone in the server's voice channels (one statement: only they are read)."""
    return [
        InVoice(f.user_id, f.channel_id, Permission.SPEAK in compute_permissions(f), suppressed)
        for f, suppressed in await q.list_voice_facts(conn, server_id=server_id)
    ]


def facts_permissions(facts: q.AccessFacts) -> Permission:
    """What these facts allow (the send batch reads facts in its own statement)."""
    return compute_permissions(facts)


async def is_administrator(conn: asyncpg.Connection, server_id: UUID, user_id: UUID) -> bool:
    """Whether a member holds ADMINISTRATOR through their roles (they cannot be timed
    out)."""
    facts = await q.get_server_facts(conn, server_id=server_id, user_id=user_id)
    return facts is not None and bool(facts.base & Permission.ADMINISTRATOR)


def facts_viewers(facts: list[q.AccessFacts]) -> set[UUID]:
    """Of these facts (one channel), the users who may see it."""
    return {f.user_id for f in facts if compute_permissions(f) & Permission.VIEW_CHANNEL}


@dataclass(frozen=True)
class ServerAccess:
    facts: q.ServerFacts
    permissions: Permission

    def can(self, need: Permission) -> bool:
        return need & self.permissions == need

    def outranks(self, position: int) -> bool:
        """May manage a role at `position`, or a member whose highest role is there:
        the owner always; anyone else only below their own highest role."""
        return self.facts.owner or position < self.facts.top_position

    @property
    def owner(self) -> bool:
        return self.facts.owner


def server_not_found() -> NotFound:
    return NotFound("no such server", code="SERVER_NOT_FOUND")


def missing(need: Permission, have: Permission, where: str = "in this server") -> Forbidden:
    names = ", ".join(p.name for p in Permission if p in Permission(need & ~have) and p.name)
    return Forbidden(
        f"you need {names} {where}", code="MISSING_PERMISSIONS", extra={"missing": names}
    )


async def access_server(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    *,
    need: Permission = Permission(0),
    lock: bool = False,
) -> ServerAccess:
    """The actor's server-wide permissions in a server they are a member of, if they
    include `need`. With `lock`, the server's row stays locked until the caller's
    transaction ends: every change of its members, roles, channels and overrides takes
    it, so what they change is decided one at a time.

    Raises: NotFound (SERVER_NOT_FOUND) for a non-member; Forbidden
    (MISSING_PERMISSIONS)."""
    facts = await q.get_server_facts(conn, server_id=server_id, user_id=actor.user_id, lock=lock)
    if facts is None or not facts.member:
        raise server_not_found()
    perms = compute_server_permissions(facts)
    if need & ~perms:
        raise timed_out() if facts.timed_out else missing(need, perms)
    return ServerAccess(facts, perms)


async def server_viewers(
    conn: asyncpg.Connection,
    server_id: UUID,
    channel_ids: list[UUID],
    user_ids: list[UUID] | None = None,
) -> dict[UUID, set[UUID]]:
    """Who of the server's members (or of `user_ids`) may see each of these channels."""
    return (await server_audience(conn, server_id, channel_ids, user_ids)).viewers


@dataclass(frozen=True)
class Audience:
    """Of each channel: who may see it, and who of them may also read its history."""

    viewers: dict[UUID, set[UUID]]
    readers: dict[UUID, set[UUID]]


HISTORY_READ = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY


async def server_audience(
    conn: asyncpg.Connection,
    server_id: UUID,
    channel_ids: list[UUID],
    user_ids: list[UUID] | None = None,
) -> Audience:
    """Who of the server's members (or of `user_ids`) may see each of these channels,
    and who may read its history.

    Set by set, so a change in a 10,000-member server costs four statements and one
    `compute_permissions` per channel and distinct set of roles: members holding the
    same roles, with no override of their own, share the same facts. The few with a
    member override in a channel (or its synced category) are decided one by one."""
    if not channel_ids or user_ids == []:
        return _audience(server_id, channel_ids, q.ServerAccessSet([], [], [], []))
    sets = await q.get_access_sets(conn, channels_of={server_id: channel_ids}, user_ids=user_ids)
    return _audience(server_id, channel_ids, sets[server_id])


async def viewers_in_servers(
    conn: asyncpg.Connection, user_id: UUID, channels_of: dict[UUID, list[UUID]]
) -> dict[UUID, dict[UUID, set[UUID]]]:
    """server_viewers of one user in each of several servers (key) and these of its
    channels (value): whether they may see each ({user_id} or nothing), in four
    statements whatever the number of servers (an account's deletion leaves up to
    MAX_SERVERS_PER_USER at once)."""
    sets = await q.get_access_sets(conn, channels_of=channels_of, user_ids=[user_id])
    return {s: _audience(s, channels_of[s], sets[s]).viewers for s in channels_of}


def _audience(server_id: UUID, channel_ids: list[UUID], facts: q.ServerAccessSet) -> Audience:
    """server_audience from the server's access facts (no I/O)."""
    out: dict[UUID, set[UUID]] = {c: set() for c in channel_ids}
    readers: dict[UUID, set[UUID]] = {c: set() for c in channel_ids}
    everyone = next((r for r in facts.roles if r.is_default), None)
    role_perms = {r.id: r.permissions for r in facts.roles}
    by_role: dict[UUID, dict[UUID, tuple[int, int]]] = {}
    by_member: dict[UUID, dict[UUID, tuple[int, int]]] = {}
    for o in facts.overrides:
        target = by_role if o.role_id is not None else by_member
        holder = o.role_id if o.role_id is not None else o.user_id
        assert holder is not None
        target.setdefault(o.channel_id, {})[holder] = (o.allow, o.deny)
    groups: dict[tuple[frozenset[UUID], bool, bool], set[UUID]] = {}
    for m in facts.members:
        groups.setdefault((frozenset(m.role_ids), m.owner, m.timed_out), set()).add(m.user_id)
    member_of = {m.user_id: (frozenset(m.role_ids), m.owner, m.timed_out) for m in facts.members}
    base_of = everyone.permissions if everyone else 0

    def overrides(channel: UUID | None, roles: frozenset[UUID], user: UUID | None) -> list[int]:
        if channel is None:
            return [0] * 6
        mine = by_role.get(channel, {})
        ev = mine.get(everyone.id, (0, 0)) if everyone else (0, 0)
        roles_allow = roles_deny = 0
        for role in roles:
            allow, deny = mine.get(role, (0, 0))
            roles_allow |= allow
            roles_deny |= deny
        member = by_member.get(channel, {}).get(user, (0, 0)) if user else (0, 0)
        return [ev[0], ev[1], roles_allow, roles_deny, member[0], member[1]]

    def holds(
        channel: q.ChannelShape, key: tuple[frozenset[UUID], bool, bool], user: UUID | None
    ) -> Permission:
        roles, owner, timed_out = key
        base = base_of
        for role in roles:
            base |= role_perms.get(role, 0)
        parent = channel.parent_id if channel.permissions_synced else None
        own = overrides(channel.id, roles, user)
        cat = overrides(parent, roles, user)
        pair = q.AccessFacts(
            channel_id=channel.id, user_id=user or channel.id, kind=channel.kind,
            server_id=server_id, participant=False, closed=False, member=True, owner=owner,
            base=base, everyone_allow=own[0], everyone_deny=own[1], roles_allow=own[2],
            roles_deny=own[3], member_allow=own[4], member_deny=own[5],
            category_everyone_allow=cat[0], category_everyone_deny=cat[1],
            category_roles_allow=cat[2], category_roles_deny=cat[3],
            category_member_allow=cat[4], category_member_deny=cat[5], timed_out=timed_out,
        )  # fmt: skip
        return compute_permissions(pair)

    # Channels whose audience is made of the same parts (the same groups, the same
    # members decided one by one) share one set, viewers and readers alike: a member
    # set copied into each channel held a few hundred bytes a member and channel (a
    # role change in a server of 2,000 members and 400 channels, 260 MB, read before
    # and after it). The sets are read, never changed.
    made: dict[frozenset[object], set[UUID]] = {}

    def union(parts: list[tuple[object, set[UUID]]]) -> set[UUID]:
        key = frozenset(part for part, _ in parts)
        users = made.get(key)
        if users is None:
            users = made[key] = set().union(*(members for _, members in parts))
        return users

    for channel in facts.channels:
        parent = channel.parent_id if channel.permissions_synced else None
        own = set(by_member.get(channel.id, {})) | set(by_member.get(parent, {}) if parent else ())
        own &= member_of.keys()
        apart = frozenset(own)
        held: list[tuple[object, set[UUID], Permission]] = [
            ((key, apart), users - own if own else users, holds(channel, key, None))
            for key, users in groups.items()
        ]
        held += [(u, {u}, holds(channel, member_of[u], u)) for u in own]
        out[channel.id] = union([(k, u) for k, u, perms in held if perms & Permission.VIEW_CHANNEL])
        readers[channel.id] = union(
            [(k, u) for k, u, perms in held if HISTORY_READ & perms == HISTORY_READ]
        )
    return Audience(out, readers)


async def access_changed(conn: asyncpg.Connection, channel_id: UUID) -> None:
    """Call in the transaction of any change of who may see or write in a channel."""
    await q.bump_access_version(conn, channel_id=channel_id)


async def access_changed_many(conn: asyncpg.Connection, channel_ids: list[UUID]) -> None:
    """access_changed for several channels at once (a server-wide change)."""
    if channel_ids:
        await q.bump_access_versions(conn, channel_ids=channel_ids)
