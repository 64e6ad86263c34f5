"""The facts that decide who may see and do what in a channel: THE ONLY SQL that reads
conversation participants, who takes direct messages from whom (blocks, friends only), server
membership, roles and permission overrides in order to decide access.

Every reader of access goes through these queries and `domain/permissions.py`'s
`compute_permissions`; tests/unit/test_house_rules.py checks that no other query
decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

from xfchat.db.queries import many
from xfchat.db.queries.channels import CHANNEL_COLUMNS, ChannelRow

CHANNEL_FIELDS = [c.strip() for c in CHANNEL_COLUMNS.split(",")]
CHANNEL_COLUMNS_PREFIXED = ", ".join(f"c.{c} AS c_{c}" for c in CHANNEL_FIELDS)


class AccessFacts(NamedTuple):
    """What `compute_permissions` needs for one user in one channel (the columns of
    FACTS_SELECT, in order)."""

    channel_id: UUID
    user_id: UUID
    kind: str  # text, voice, category (server channels); direct, group (conversations)
    server_id: UUID | None
    participant: bool  # conversations: the user takes part
    closed: bool  # a direct conversation whose other person takes no messages from the user
    member: bool  # server channels: the user is a member of the server
    owner: bool  # ... and owns it
    base: int  # @everyone's permissions | those of the member's roles
    everyone_allow: int  # the channel's override for @everyone
    everyone_deny: int
    roles_allow: int  # its overrides for the member's roles, combined
    roles_deny: int
    member_allow: int  # its override for this member
    member_deny: int
    # The overrides of the channel's category, likewise, where the channel is synced
    # with it (zero otherwise).
    category_everyone_allow: int
    category_everyone_deny: int
    category_roles_allow: int
    category_roles_deny: int
    category_member_allow: int
    category_member_deny: int
    timed_out: bool  # server channels: the member is timed out right now
    # A direct conversation whose other person deleted their account (it is `closed`).
    peer_deleted: bool = False
    # The user's own account is deleted (a write of theirs that passed its session's
    # check as the deletion committed is refused under its lock: domain/access.py).
    account_deleted: bool = False


@dataclass(frozen=True)
class ServerFacts:
    """What `compute_server_permissions` and the role hierarchy need for one user in
    one server."""

    server_id: UUID
    user_id: UUID
    member: bool
    owner: bool
    owner_id: UUID  # the server's owner
    base: int  # @everyone's permissions | those of the member's roles
    top_position: int  # the position of the member's highest role (0: @everyone only)
    timed_out_until: datetime | None
    timed_out: bool  # ... which is later than now


_SERVER_FACTS = """
    SELECT s.id AS server_id, $2::uuid AS user_id,
           sm.user_id IS NOT NULL AS member,
           s.owner_id = $2 AS owner, s.owner_id,
           COALESCE(ev.permissions, 0) | COALESCE((
               SELECT bit_or(r.permissions) FROM member_roles mr JOIN roles r ON r.id = mr.role_id
               WHERE mr.server_id = s.id AND mr.user_id = $2), 0) AS base,
           COALESCE((SELECT max(r.position) FROM member_roles mr JOIN roles r ON r.id = mr.role_id
                     WHERE mr.server_id = s.id AND mr.user_id = $2), 0) AS top_position,
           sm.timed_out_until, COALESCE(sm.timed_out_until > now(), false) AS timed_out
    FROM servers s
    LEFT JOIN server_members sm ON sm.server_id = s.id AND sm.user_id = $2
    LEFT JOIN roles ev ON ev.server_id = s.id AND ev.is_default
    WHERE s.id = $1
"""

# THE rule for direct messages: whether {recipient} takes none from {sender} (two SQL
# expressions of user ids): a block between them either way, or the recipient takes
# them from friends only (a setting nobody else sees) and the two are not friends. A
# refusal cannot tell one reason from the other, so it never reveals a block. A deleted
# account takes none from anyone (that one is public: the facts' `peer_deleted`), and
# sends none (a send that passed its session's check as the deletion committed).
DIRECT_CLOSED_RULE = """(
    EXISTS (SELECT 1 FROM users d
            WHERE d.id IN ({recipient}, {sender}) AND d.deleted_at IS NOT NULL)
    OR EXISTS (SELECT 1 FROM blocks b
            WHERE (b.blocker_id = {sender} AND b.blocked_id = {recipient})
               OR (b.blocker_id = {recipient} AND b.blocked_id = {sender}))
    OR EXISTS (SELECT 1 FROM users r
               WHERE r.id = {recipient} AND r.dm_policy = 'friends'
                 AND NOT EXISTS (SELECT 1 FROM friendships f
                                 WHERE f.user_low = LEAST({sender}, {recipient})
                                   AND f.user_high = GREATEST({sender}, {recipient})))
)"""
# In a direct conversation, for the user of a pair: toward the other participant.
_DIRECT_PEER = (
    "(CASE WHEN ch.dm_user_low = pr.user_id THEN ch.dm_user_high ELSE ch.dm_user_low END)"
)
DIRECT_CLOSED = DIRECT_CLOSED_RULE.format(sender="pr.user_id", recipient=_DIRECT_PEER)

# The facts of each (channel_id, user_id) pair of a relation named `pairs`, which the
# statement using this defines first.
FACTS_SELECT = f"""
    SELECT pr.channel_id, pr.user_id, ch.kind, ch.server_id,
           -- (Each row of the user's own looked up by its key, as a scalar subquery: an
           -- EXISTS correlated by one equality, PostgreSQL may plan as a hashed subplan,
           -- the whole table read to build the hash at every execution: every user, for
           -- each `ready`, and every conversation's participants.)
           COALESCE((SELECT true FROM conversation_participants p
                     WHERE p.channel_id = ch.id AND p.user_id = pr.user_id), false)
               AS participant,
           (ch.kind = 'direct' AND {DIRECT_CLOSED}) AS closed,
           sm.user_id IS NOT NULL AS member,
           COALESCE(s.owner_id = pr.user_id, false) AS owner,
           COALESCE(ev.permissions, 0) | COALESCE((
               SELECT bit_or(r.permissions) FROM member_roles mr JOIN roles r ON r.id = mr.role_id
               WHERE mr.server_id = ch.server_id AND mr.user_id = pr.user_id), 0) AS base,
           COALESCE(oe.allow, 0) AS everyone_allow, COALESCE(oe.deny, 0) AS everyone_deny,
           COALESCE(orl.allow, 0) AS roles_allow, COALESCE(orl.deny, 0) AS roles_deny,
           COALESCE(om.allow, 0) AS member_allow, COALESCE(om.deny, 0) AS member_deny,
           COALESCE(ce.allow, 0) AS category_everyone_allow,
           COALESCE(ce.deny, 0) AS category_everyone_deny,
           COALESCE(crl.allow, 0) AS category_roles_allow,
           COALESCE(crl.deny, 0) AS category_roles_deny,
           COALESCE(cm.allow, 0) AS category_member_allow,
           COALESCE(cm.deny, 0) AS category_member_deny,
           COALESCE(sm.timed_out_until > now(), false) AS timed_out,
           (ch.kind = 'direct' AND COALESCE((
               SELECT d.deleted_at IS NOT NULL FROM users d WHERE d.id = {_DIRECT_PEER}
           ), false)) AS peer_deleted,
           COALESCE((SELECT me.deleted_at IS NOT NULL FROM users me WHERE me.id = pr.user_id),
                    false) AS account_deleted
    FROM pairs pr
    JOIN channels ch ON ch.id = pr.channel_id
    LEFT JOIN servers s ON s.id = ch.server_id
    -- (the membership looked up by its whole key, pair by pair: OFFSET 0 keeps a generic
    -- plan from joining the server's members by server_id alone and filtering for the
    -- user, every member before them in id order read for each channel: 500,000 rows
    -- for a `ready` of a member of 10,000 whose id sorts last)
    -- (and not at all for a conversation: the lookup `server_id = NULL` read the user's
    -- every membership by their user index, for each conversation)
    LEFT JOIN LATERAL (
        SELECT m.user_id, m.timed_out_until FROM server_members m
        WHERE ch.server_id IS NOT NULL AND m.server_id = ch.server_id AND m.user_id = pr.user_id
        OFFSET 0
    ) sm ON true
    LEFT JOIN roles ev ON ev.server_id = ch.server_id AND ev.is_default
    LEFT JOIN channel_permission_overrides oe ON oe.channel_id = ch.id AND oe.role_id = ev.id
    -- (the member's roles by member_roles' key, server first: by role_id alone, its
    -- index read every holder of an overridden role, 9,000 rows for a "verified" role
    -- on every access check of its channel)
    LEFT JOIN LATERAL (
        SELECT bit_or(o.allow) AS allow, bit_or(o.deny) AS deny
        FROM channel_permission_overrides o
        JOIN member_roles mr
            ON mr.server_id = ch.server_id AND mr.user_id = pr.user_id AND mr.role_id = o.role_id
        WHERE o.channel_id = ch.id
    ) orl ON sm.user_id IS NOT NULL
    LEFT JOIN channel_permission_overrides om ON om.channel_id = ch.id AND om.user_id = pr.user_id
    LEFT JOIN channel_permission_overrides ce
        ON ch.permissions_synced AND ce.channel_id = ch.parent_id AND ce.role_id = ev.id
    LEFT JOIN LATERAL (
        SELECT bit_or(o.allow) AS allow, bit_or(o.deny) AS deny
        FROM channel_permission_overrides o
        JOIN member_roles mr
            ON mr.server_id = ch.server_id AND mr.user_id = pr.user_id AND mr.role_id = o.role_id
        WHERE o.channel_id = ch.parent_id
    ) crl ON sm.user_id IS NOT NULL AND ch.permissions_synced AND ch.parent_id IS NOT NULL
    LEFT JOIN channel_permission_overrides cm
        ON ch.permissions_synced AND cm.channel_id = ch.parent_id AND cm.user_id = pr.user_id
"""

# The facts for one channel ($1) and several users ($2), as a JSON array: the send
# batch reads them inside its own statement (db/queries/messages_send.py).
FACTS_OF_USERS_JSON = f"""
    (WITH pairs AS (SELECT $1::uuid AS channel_id, u AS user_id FROM unnest($2::uuid[]) AS u)
     SELECT COALESCE(json_agg(f), '[]'::json) FROM ({FACTS_SELECT}) f)
"""

# The same facts keyed by user id, as jsonb (equal whatever the order of the rows): the
# send batch's fast path compares them with those it decided from.
FACTS_BY_USER_JSONB = f"""
    (WITH pairs AS (SELECT $1::uuid AS channel_id, u AS user_id FROM unnest($2::uuid[]) AS u)
     SELECT COALESCE(jsonb_object_agg(f.user_id, to_jsonb(f)), '{{}}'::jsonb)
     FROM ({FACTS_SELECT}) f)
"""

_FACTS_OF_USERS = f"""
    WITH pairs AS (SELECT $1::uuid AS channel_id, u AS user_id FROM unnest($2::uuid[]) AS u)
    {FACTS_SELECT}
"""

_FACTS_IN_CHANNELS = f"""
    WITH pairs AS (SELECT c AS channel_id, $2::uuid AS user_id FROM unnest($1::uuid[]) AS c)
    {FACTS_SELECT}
"""

_CHANNEL_AND_FACTS = f"""
    WITH pairs AS (SELECT $1::uuid AS channel_id, $2::uuid AS user_id)
    SELECT {CHANNEL_COLUMNS_PREFIXED}, f.* FROM ({FACTS_SELECT}) f JOIN channels c ON c.id = f.channel_id
"""
# Locking first. The lock returns the row's newest version, the facts come from the
# statement's snapshot, which may be older (taken before a change that held the lock
# committed): equal access versions (every such change bumps it) mean they are current.
_CHANNEL_AND_FACTS_LOCKED = f"""
    WITH lock AS (SELECT id, access_version FROM channels WHERE id = $1 FOR {{mode}}),
         pairs AS (SELECT l.id AS channel_id, $2::uuid AS user_id FROM lock l)
    SELECT {CHANNEL_COLUMNS_PREFIXED}, f.*,
           c.access_version = (SELECT access_version FROM lock) AS current
    FROM ({FACTS_SELECT}) f JOIN channels c ON c.id = f.channel_id
"""
_LOCKED = {
    mode: _CHANNEL_AND_FACTS_LOCKED.replace("{mode}", mode) for mode in ("UPDATE", "KEY SHARE")
}

# Every channel the user could see: the conversations they take part in and the
# channels of the servers they are members of (overrides then decide).
_FACTS_OF_CANDIDATES = f"""
    WITH pairs AS (
        SELECT p.channel_id, p.user_id FROM conversation_participants p WHERE p.user_id = $1
        UNION ALL
        SELECT c.id, sm.user_id FROM server_members sm JOIN channels c ON c.server_id = sm.server_id
        WHERE sm.user_id = $1
    )
    {FACTS_SELECT}
"""


# The conversations the user takes part in, alone: what the conversation routes need,
# without the channels of every server the user is in (200 of 500 channels each).
_FACTS_OF_CONVERSATIONS = f"""
    WITH pairs AS (
        SELECT p.channel_id, p.user_id FROM conversation_participants p WHERE p.user_id = $1
    )
    {FACTS_SELECT}
"""


# The facts of everyone in a voice channel of server $1, in their channel, with whether
# their state is suppressed now: one statement, however many members the server has.
_FACTS_IN_VOICE = f"""
    WITH pairs AS (SELECT channel_id, user_id FROM voice_states WHERE server_id = $1)
    SELECT f.*, v.suppress AS suppressed
    FROM ({FACTS_SELECT}) f JOIN voice_states v ON v.user_id = f.user_id
"""


_DIRECT_REFUSED = "SELECT " + DIRECT_CLOSED_RULE.format(sender="$1::uuid", recipient="$2::uuid")


async def list_direct_channels_with_strangers(
    conn: asyncpg.Connection, *, user_id: UUID
) -> list[UUID]:
    """The user's direct conversations whose other person is not their friend, by id:
    those whose access the user's choice of whom to take messages from changes."""
    rows = await conn.fetch(
        """
        SELECT c.id FROM conversation_participants p JOIN channels c ON c.id = p.channel_id
        WHERE p.user_id = $1 AND c.kind = 'direct'
          AND NOT EXISTS (SELECT 1 FROM friendships f
                          WHERE f.user_low = c.dm_user_low AND f.user_high = c.dm_user_high)
        ORDER BY c.id
        """,
        user_id,
    )
    return [r["id"] for r in rows]


async def get_direct_refused(conn: asyncpg.Connection, *, sender: UUID, recipient: UUID) -> bool:
    """Whether `recipient` takes no direct messages from `sender` (DIRECT_CLOSED_RULE)."""
    return bool(await conn.fetchval(_DIRECT_REFUSED, sender, recipient))


def facts_from_json(rows: list[dict[str, object]]) -> list[AccessFacts]:
    """The facts as FACTS_OF_USERS_JSON returns them."""
    return [
        AccessFacts(
            **{
                **r,
                "channel_id": UUID(str(r["channel_id"])),
                "user_id": UUID(str(r["user_id"])),
                "server_id": UUID(str(r["server_id"])) if r["server_id"] else None,
            }  # type: ignore[arg-type]
        )
        for r in rows
    ]


async def get_channel_access(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    user_id: UUID,
    lock: bool = False,
    share: bool = False,
) -> tuple[ChannelRow, AccessFacts] | None:
    """A channel and one user's facts in it; None if there is no such channel. With
    `lock`, the channel's row is locked FOR UPDATE first (a change of who may see it
    follows); with `share`, FOR KEY SHARE (a write there: such a change waits for it,
    and it for one under way). Either way the facts are those after the lock."""
    sql = _LOCKED["UPDATE" if lock else "KEY SHARE"] if lock or share else _CHANNEL_AND_FACTS
    record = await conn.fetchrow(sql, channel_id, user_id)
    if record is not None and record.get("current") is False:
        # A change committed while this waited for the lock: read again, after it (the
        # lock is held now, so no other can come between).
        record = await conn.fetchrow(sql, channel_id, user_id)
    if record is None:
        return None
    row = dict(record)
    row.pop("current", None)
    channel = ChannelRow(**{f: row.pop(f"c_{f}") for f in CHANNEL_FIELDS})
    return channel, AccessFacts(**row)


# One row if the facts ($3, JSON text) of user $2 in channel $1 still hold, judged as a
# write's check is: the channel's row locked FOR KEY SHARE first. A change of who may
# write there that committed before the statement shows in the facts; one that committed
# while it waited for the lock, in the access version (every such change bumps it); one
# that comes later waits for the statement's transaction. (Typing's notification is sent
# only on this row: db/queries/event_log.py's notify_if_facts_hold.)
FACTS_STILL_HOLD = f"""
    WITH lock AS MATERIALIZED (
             SELECT id, access_version FROM channels WHERE id = $1 FOR KEY SHARE),
         pairs AS (SELECT l.id AS channel_id, $2::uuid AS user_id FROM lock l)
    SELECT 1 FROM ({FACTS_SELECT}) f JOIN channels c ON c.id = f.channel_id
    WHERE c.access_version = (SELECT access_version FROM lock) AND to_jsonb(f) = $3::text::jsonb
"""


async def list_access_facts(
    conn: asyncpg.Connection, *, channel_id: UUID, user_ids: list[UUID]
) -> list[AccessFacts]:
    """Several users' facts in one channel (none if there is no such channel)."""
    return many(AccessFacts, await conn.fetch(_FACTS_OF_USERS, channel_id, user_ids))


async def list_facts_in_channels(
    conn: asyncpg.Connection, *, channel_ids: list[UUID], user_id: UUID
) -> list[AccessFacts]:
    """One user's facts in several channels (none for a channel that does not exist)."""
    return many(AccessFacts, await conn.fetch(_FACTS_IN_CHANNELS, channel_ids, user_id))


async def list_candidate_facts(conn: asyncpg.Connection, *, user_id: UUID) -> list[AccessFacts]:
    """The user's facts in every channel they might see."""
    return many(AccessFacts, await conn.fetch(_FACTS_OF_CANDIDATES, user_id))


async def list_conversation_facts(conn: asyncpg.Connection, *, user_id: UUID) -> list[AccessFacts]:
    """The user's facts in every conversation they take part in."""
    return many(AccessFacts, await conn.fetch(_FACTS_OF_CONVERSATIONS, user_id))


async def list_conversation_ids(
    conn: asyncpg.Connection, *, user_id: UUID, kind: str
) -> list[UUID]:
    """The conversations of this kind the user takes part in, in id order."""
    records = await conn.fetch(
        """
        SELECT p.channel_id FROM conversation_participants p JOIN channels c ON c.id = p.channel_id
        WHERE p.user_id = $1 AND c.kind = $2 ORDER BY p.channel_id
        """,
        user_id,
        kind,
    )
    return [r["channel_id"] for r in records]


async def list_voice_facts(
    conn: asyncpg.Connection, *, server_id: UUID
) -> list[tuple[AccessFacts, bool]]:
    """The facts of each member in a voice channel of the server, in that channel, and
    whether their voice state is suppressed."""
    out = []
    for record in await conn.fetch(_FACTS_IN_VOICE, server_id):
        row = dict(record)
        suppressed = bool(row.pop("suppressed"))
        out.append((AccessFacts(**row), suppressed))
    return out


async def get_server_facts(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, lock: bool = False
) -> ServerFacts | None:
    """One user's facts in a server; None if there is no such server. With `lock`, the
    server's row is locked FOR UPDATE first (every change of its members, roles or
    channels takes it, so they happen one at a time)."""
    if lock:
        await conn.execute("SELECT 1 FROM servers WHERE id = $1 FOR UPDATE", server_id)
    record = await conn.fetchrow(_SERVER_FACTS, server_id, user_id)
    return None if record is None else ServerFacts(**dict(record))


@dataclass(frozen=True)
class MemberRoles:
    """One member of a server and the roles they hold (@everyone not counted)."""

    user_id: UUID
    owner: bool
    timed_out: bool
    role_ids: list[UUID]


@dataclass(frozen=True)
class ServerRole:
    id: UUID
    permissions: int
    is_default: bool


@dataclass(frozen=True)
class ChannelOverride:
    """One per-channel permission override: for a role, or for a member."""

    channel_id: UUID
    role_id: UUID | None
    user_id: UUID | None
    allow: int
    deny: int


@dataclass(frozen=True)
class ChannelShape:
    """What the overrides of a channel depend on besides its own: its category."""

    id: UUID
    kind: str
    parent_id: UUID | None
    permissions_synced: bool


@dataclass(frozen=True)
class ServerAccessSet:
    """A whole server's access facts, set by set rather than member by channel:
    `domain/access.py` turns them into the same AccessFacts the per-pair query gives,
    one per distinct combination of roles and member overrides."""

    roles: list[ServerRole]
    channels: list[ChannelShape]
    overrides: list[ChannelOverride]  # of those channels and their categories
    members: list[MemberRoles]


_MEMBER_ROLES = """
    SELECT sm.server_id, sm.user_id, s.owner_id = sm.user_id AS owner,
           COALESCE(sm.timed_out_until > now(), false) AS timed_out,
           COALESCE(array_agg(mr.role_id) FILTER (WHERE mr.role_id IS NOT NULL),
                    '{}'::uuid[]) AS role_ids
    FROM server_members sm
    JOIN servers s ON s.id = sm.server_id
    LEFT JOIN member_roles mr ON mr.server_id = sm.server_id AND mr.user_id = sm.user_id
    WHERE sm.server_id = ANY($1::uuid[]) %s
    GROUP BY sm.server_id, sm.user_id, s.owner_id, sm.timed_out_until
"""
_ALL_MEMBER_ROLES = _MEMBER_ROLES % ""
_SOME_MEMBER_ROLES = _MEMBER_ROLES % "AND sm.user_id = ANY($2::uuid[])"
# The overrides of these channels ($1) and of the categories they follow.
_OVERRIDES_OF_CHANNELS = """
    SELECT o.channel_id, o.role_id, o.user_id, o.allow, o.deny
    FROM channel_permission_overrides o
    WHERE o.channel_id IN (
        SELECT c.id FROM channels c WHERE c.id = ANY($1::uuid[])
        UNION
        SELECT c.parent_id FROM channels c
        WHERE c.id = ANY($1::uuid[]) AND c.permissions_synced AND c.parent_id IS NOT NULL
    )
"""


async def get_access_sets(
    conn: asyncpg.Connection,
    *,
    channels_of: dict[UUID, list[UUID]],
    user_ids: list[UUID] | None = None,
) -> dict[UUID, ServerAccessSet]:
    """The facts of every member (or of those of `user_ids` who are members) of each of
    these servers (key) in these of its channels (value; one of another server is left
    out), in four set-based statements whatever the number of servers and members."""
    servers = list(channels_of)
    sets = {s: ServerAccessSet([], [], [], []) for s in servers}
    for r in await conn.fetch(
        "SELECT server_id, id, permissions, is_default FROM roles WHERE server_id = ANY($1::uuid[])",
        servers,
    ):
        sets[r["server_id"]].roles.append(ServerRole(r["id"], r["permissions"], r["is_default"]))
    pairs = sorted({(s, c) for s, channels in channels_of.items() for c in channels})
    for r in await conn.fetch(
        """
        SELECT c.server_id, c.id, c.kind, c.parent_id, c.permissions_synced
        FROM unnest($1::uuid[], $2::uuid[]) AS x(server_id, id)
        JOIN channels c ON c.id = x.id AND c.server_id = x.server_id
        """,
        [s for s, _ in pairs],
        [c for _, c in pairs],
    ):
        shape = ChannelShape(r["id"], r["kind"], r["parent_id"], r["permissions_synced"])
        sets[r["server_id"]].channels.append(shape)
    # Each server's: those of its channels and of the categories they follow, wherever
    # those are (a server's own, as the routes keep them).
    wanted = {
        s: {c.id for c in sets[s].channels}
        | {c.parent_id for c in sets[s].channels if c.permissions_synced and c.parent_id}
        for s in servers
    }
    of_channel: dict[UUID, list[ChannelOverride]] = {}
    for r in await conn.fetch(_OVERRIDES_OF_CHANNELS, [c for _, c in pairs]):
        o = ChannelOverride(r["channel_id"], r["role_id"], r["user_id"], r["allow"], r["deny"])
        of_channel.setdefault(o.channel_id, []).append(o)
    for s in servers:
        sets[s].overrides.extend(o for c in wanted[s] for o in of_channel.get(c, ()))
    if user_ids is None:
        records = await conn.fetch(_ALL_MEMBER_ROLES, servers)
    else:
        records = await conn.fetch(_SOME_MEMBER_ROLES, servers, user_ids)
    for r in records:
        member = MemberRoles(r["user_id"], r["owner"], r["timed_out"], list(r["role_ids"]))
        sets[r["server_id"]].members.append(member)
    return sets


async def list_presence_peers_among(
    conn: asyncpg.Connection, *, user_id: UUID, among: list[UUID]
) -> list[UUID]:
    """Those of `among` (not the user) whose presence the user may see: a friend,
    someone they share a group conversation with, or a member of a server they are in.
    One statement, each of `among` judged by keys."""
    records = await conn.fetch(
        """
        SELECT x.id FROM unnest($2::uuid[]) AS x(id)
        WHERE x.id <> $1 AND (
            EXISTS (SELECT 1 FROM friendships f
                    WHERE f.user_low = LEAST(x.id, $1) AND f.user_high = GREATEST(x.id, $1))
            OR EXISTS (SELECT 1 FROM conversation_participants a
                       JOIN channels c ON c.id = a.channel_id AND c.kind = 'group'
                       JOIN conversation_participants b ON b.channel_id = a.channel_id
                       WHERE a.user_id = x.id AND b.user_id = $1)
            OR EXISTS (SELECT 1 FROM server_members a
                       JOIN server_members b ON b.server_id = a.server_id
                       WHERE a.user_id = x.id AND b.user_id = $1))
        """,
        user_id,
        among,
    )
    return [r["id"] for r in records]


async def list_member_servers(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    rows = await conn.fetch("SELECT server_id FROM server_members WHERE user_id = $1", user_id)
    return [r["server_id"] for r in rows]


async def bump_access_versions(conn: asyncpg.Connection, *, channel_ids: list[UUID]) -> None:
    """bump_access_version for several channels in one statement (locked in id order,
    so two such changes cannot deadlock)."""
    await conn.execute(
        """
        WITH lock AS (
            SELECT id FROM channels WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
        )
        UPDATE channels c SET access_version = c.access_version + 1 FROM lock WHERE c.id = lock.id
        """,
        channel_ids,
    )


async def bump_access_version(conn: asyncpg.Connection, *, channel_id: UUID) -> None:
    """Record that who may see (or write in) a channel changed. Locks the channel's row
    FOR UPDATE until the caller's transaction ends: a send batch, which holds FOR KEY
    SHARE while it checks access, is then either before this change or sees it."""
    await conn.execute(
        """
        WITH lock AS (SELECT id FROM channels WHERE id = $1 FOR UPDATE)
        UPDATE channels c SET access_version = c.access_version + 1 FROM lock WHERE c.id = lock.id
        """,
        channel_id,
    )
