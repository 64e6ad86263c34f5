from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one
from xfchat.db.queries.channels import OverrideRow
from xfchat.db.queries.presence import PresenceRow


@dataclass(frozen=True)
class ServerRow:
    id: UUID
    name: str
    owner_id: UUID
    description: str | None
    icon_url: str | None
    created_at: datetime
    updated_at: datetime
    member_count: int
    search_language: str
    default_notifications: str  # 'all' | 'mentions': members' level with none of their own


@dataclass(frozen=True)
class MemberRow:
    server_id: UUID
    user_id: UUID
    nickname: str | None
    joined_at: datetime
    timed_out_until: datetime | None
    role_ids: list[UUID]  # highest first
    top_position: int  # the position of their highest role (0: @everyone only)
    mute: bool  # server-muted in voice (by a moderator, in voice or not)
    deaf: bool  # server-deafened likewise


SERVER_COLUMNS = "id, name, owner_id, description, icon_url, created_at, updated_at"
# (the search language: a regconfig, read as its name)
SERVER_SETTINGS = "search_language::text AS search_language, default_notifications"
SERVER_COLUMNS_OF_S = ", ".join("s." + c.strip() for c in SERVER_COLUMNS.split(","))
_SERVER_SELECT = f"""
    SELECT {SERVER_COLUMNS_OF_S},
           (SELECT count(*) FROM server_members m WHERE m.server_id = s.id) AS member_count,
           s.search_language::text AS search_language, s.default_notifications
    FROM servers s
"""
MEMBER_SELECT = """
    SELECT m.server_id, m.user_id, m.nickname, m.joined_at, m.timed_out_until,
           COALESCE((SELECT array_agg(mr.role_id ORDER BY r.position DESC, r.id)
                     FROM member_roles mr JOIN roles r ON r.id = mr.role_id
                     WHERE mr.server_id = m.server_id AND mr.user_id = m.user_id),
                    '{}'::uuid[]) AS role_ids,
           COALESCE((SELECT max(r.position) FROM member_roles mr JOIN roles r ON r.id = mr.role_id
                     WHERE mr.server_id = m.server_id AND mr.user_id = m.user_id), 0)
               AS top_position,
           m.voice_mute AS mute, m.voice_deaf AS deaf
    FROM server_members m
"""


async def insert_server(
    conn: asyncpg.Connection,
    *,
    name: str,
    owner_id: UUID,
    description: str | None = None,
    server_id: UUID | None = None,
) -> ServerRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO servers (id, name, owner_id, description)
        VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4)
        RETURNING {SERVER_COLUMNS}, 0::bigint AS member_count, {SERVER_SETTINGS}
        """,
        server_id,
        name,
        owner_id,
        description,
    )
    return one(ServerRow, record)


async def server_exists(conn: asyncpg.Connection, *, server_id: UUID) -> bool:
    """(Only its id: true at any schema version, before migrations too.)"""
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM servers WHERE id = $1)", server_id)
    )


async def get_server(conn: asyncpg.Connection, *, server_id: UUID) -> ServerRow | None:
    record = await conn.fetchrow(_SERVER_SELECT + " WHERE s.id = $1", server_id)
    return maybe(ServerRow, record)


async def list_user_servers(conn: asyncpg.Connection, *, user_id: UUID) -> list[ServerRow]:
    """The servers the user is a member of, in the order they joined."""
    records = await conn.fetch(
        _SERVER_SELECT
        + """
        JOIN server_members me ON me.server_id = s.id AND me.user_id = $1
        ORDER BY me.joined_at, s.id
        """,
        user_id,
    )
    return many(ServerRow, records)


async def count_user_servers(conn: asyncpg.Connection, *, user_id: UUID, lock: bool = False) -> int:
    """How many servers the user is in. With `lock`, the user's row is locked first
    (until the transaction ends) and counted after, in a statement of its own, so two
    joins at once take turns and the second counts the first."""
    if lock:
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
    return int(
        await conn.fetchval("SELECT count(*) FROM server_members WHERE user_id = $1", user_id)
    )


async def update_server(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    name: str | None = None,
    description: str | None = None,
    clear_description: bool = False,
    icon_url: str | None = None,
    clear_icon_url: bool = False,
    owner_id: UUID | None = None,
    search_language: str | None = None,
    default_notifications: str | None = None,
) -> ServerRow | None:
    """Change the given fields (None keeps one, unless its clear flag is set)."""
    await conn.execute(
        """
        UPDATE servers SET
            name = COALESCE($2, name),
            description = CASE WHEN $4 THEN NULL ELSE COALESCE($3, description) END,
            icon_url = CASE WHEN $6 THEN NULL ELSE COALESCE($5, icon_url) END,
            owner_id = COALESCE($7, owner_id),
            search_language = COALESCE($8::text::regconfig, search_language),
            default_notifications = COALESCE($9, default_notifications),
            updated_at = now()
        WHERE id = $1
        """,
        server_id,
        name,
        description,
        clear_description,
        icon_url,
        clear_icon_url,
        owner_id,
        search_language,
        default_notifications,
    )
    return await get_server(conn, server_id=server_id)


async def delete_server(conn: asyncpg.Connection, *, server_id: UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM servers WHERE id = $1 RETURNING true", server_id))


async def insert_server_member(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, nickname: str | None = None
) -> bool:
    """Add a member (with what was left of a timeout they had when they left); False
    if they already were one."""
    return bool(
        await conn.fetchval(
            """
            WITH kept AS (
                DELETE FROM lingering_timeouts WHERE server_id = $1 AND user_id = $2
                RETURNING until
            )
            INSERT INTO server_members (server_id, user_id, nickname, timed_out_until)
            VALUES ($1, $2, $3, (SELECT until FROM kept WHERE until > now()))
            ON CONFLICT DO NOTHING RETURNING true
            """,
            server_id,
            user_id,
            nickname,
        )
    )


async def delete_server_members(
    conn: asyncpg.Connection, *, server_ids: list[UUID], user_id: UUID
) -> list[UUID]:
    """Remove the user from these servers, keeping a running timeout for when they
    rejoin (and dropping the servers' kept timeouts that have ended); those they were
    a member of."""
    records = await conn.fetch(
        """
        WITH gone AS (
            DELETE FROM server_members WHERE server_id = ANY($1::uuid[]) AND user_id = $2
            RETURNING server_id, timed_out_until
        ), expired AS (
            DELETE FROM lingering_timeouts
            WHERE server_id = ANY($1::uuid[]) AND user_id <> $2 AND until <= now()
        ), kept AS (
            INSERT INTO lingering_timeouts (server_id, user_id, until)
            SELECT server_id, $2, timed_out_until FROM gone WHERE timed_out_until > now()
            ON CONFLICT (server_id, user_id) DO UPDATE SET until = EXCLUDED.until
        )
        SELECT server_id FROM gone
        """,
        server_ids,
        user_id,
    )
    return [r["server_id"] for r in records]


async def drop_member_overrides(
    conn: asyncpg.Connection, *, server_ids: list[UUID], user_id: UUID, keep_denies: bool
) -> list[UUID]:
    """The user's own overrides in these servers' channels lose what they allow, and
    those that deny nothing go (with `keep_denies` false, all go); the channels whose
    overrides changed."""
    records = await conn.fetch(
        """
        WITH mine AS (
            SELECT o.id, o.deny FROM channel_permission_overrides o
            JOIN channels c ON c.id = o.channel_id
            WHERE o.user_id = $2 AND c.server_id = ANY($1::uuid[])
        ), gone AS (
            DELETE FROM channel_permission_overrides o USING mine
            WHERE o.id = mine.id AND (mine.deny = 0 OR NOT $3)
            RETURNING o.channel_id
        ), kept AS (
            UPDATE channel_permission_overrides o SET allow = 0 FROM mine
            WHERE o.id = mine.id AND mine.deny <> 0 AND $3 AND o.allow <> 0
            RETURNING o.channel_id
        )
        SELECT channel_id FROM gone UNION SELECT channel_id FROM kept
        """,
        server_ids,
        user_id,
        keep_denies,
    )
    return sorted({r["channel_id"] for r in records})


async def list_servers_with_member_overrides(
    conn: asyncpg.Connection, *, user_id: UUID
) -> list[UUID]:
    """The servers in whose channels the user has overrides of their own (a member's, or
    a former member's lingering denies), in id order."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT c.server_id FROM channel_permission_overrides o
        JOIN channels c ON c.id = o.channel_id
        WHERE o.user_id = $1 AND c.server_id IS NOT NULL
        ORDER BY c.server_id
        """,
        user_id,
    )
    return [r["server_id"] for r in rows]


async def get_member(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID
) -> MemberRow | None:
    record = await conn.fetchrow(
        MEMBER_SELECT + " WHERE m.server_id = $1 AND m.user_id = $2", server_id, user_id
    )
    return maybe(MemberRow, record)


async def list_memberships(conn: asyncpg.Connection, *, user_id: UUID) -> list[MemberRow]:
    """The user as a member of each of their servers."""
    return many(MemberRow, await conn.fetch(MEMBER_SELECT + " WHERE m.user_id = $1", user_id))


async def list_members(
    conn: asyncpg.Connection, *, server_id: UUID, after: UUID | None, limit: int
) -> list[MemberRow]:
    """A page of the server's members, by user id (a stable order for 10,000 of them)."""
    records = await conn.fetch(
        MEMBER_SELECT
        + """
        -- (a bound of the key, whatever the plan: an OR would be a filter, every page
        -- walking the members before it; no user has the nil id)
        WHERE m.server_id = $1
          AND m.user_id > COALESCE($2::uuid, '00000000-0000-0000-0000-000000000000')
        ORDER BY m.user_id LIMIT $3
        """,
        server_id,
        after,
        limit,
    )
    return many(MemberRow, records)


async def list_members_of(
    conn: asyncpg.Connection, *, server_id: UUID, user_ids: list[UUID]
) -> list[MemberRow]:
    """These users as members of the server (those who are), by user id."""
    records = await conn.fetch(
        MEMBER_SELECT
        + " WHERE m.server_id = $1 AND m.user_id = ANY($2::uuid[]) ORDER BY m.user_id",
        server_id,
        user_ids,
    )
    return many(MemberRow, records)


async def list_member_ids(conn: asyncpg.Connection, *, server_id: UUID) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT user_id FROM server_members WHERE server_id = $1 ORDER BY user_id", server_id
    )
    return [r["user_id"] for r in rows]


async def upsert_permission_override(
    conn: asyncpg.Connection,
    *,
    channel_id: UUID,
    role_id: UUID | None = None,
    user_id: UUID | None = None,
    allow: int,
    deny: int,
) -> None:
    """Set a channel's override for one role or one member."""
    await conn.execute(
        """
        INSERT INTO channel_permission_overrides (channel_id, role_id, user_id, allow, deny)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT ON CONSTRAINT overrides_one_per_target
        DO UPDATE SET allow = EXCLUDED.allow, deny = EXCLUDED.deny
        """,
        channel_id,
        role_id,
        user_id,
        allow,
        deny,
    )


async def upsert_overrides(conn: asyncpg.Connection, *, rows: list[OverrideRow]) -> None:
    """Set these overrides (each target once), one statement for them all."""
    await conn.execute(
        """
        INSERT INTO channel_permission_overrides (channel_id, role_id, user_id, allow, deny)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::bigint[])
        ON CONFLICT ON CONSTRAINT overrides_one_per_target
        DO UPDATE SET allow = EXCLUDED.allow, deny = EXCLUDED.deny
        """,
        [r.channel_id for r in rows],
        [r.role_id for r in rows],
        [r.user_id for r in rows],
        [r.allow for r in rows],
        [r.deny for r in rows],
    )


async def update_member(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    user_id: UUID,
    nickname: str | None = None,
    clear_nickname: bool = False,
    timed_out_until: datetime | None = None,
    clear_timeout: bool = False,
) -> MemberRow | None:
    """Change a member's nickname or timeout (None keeps it unless its clear flag is
    set); None if they are not a member."""
    found = await conn.fetchval(
        """
        UPDATE server_members SET
            nickname = CASE WHEN $4 THEN NULL ELSE COALESCE($3, nickname) END,
            timed_out_until = CASE WHEN $6 THEN NULL ELSE COALESCE($5, timed_out_until) END
        WHERE server_id = $1 AND user_id = $2 RETURNING true
        """,
        server_id,
        user_id,
        nickname,
        clear_nickname,
        timed_out_until,
        clear_timeout,
    )
    return await get_member(conn, server_id=server_id, user_id=user_id) if found else None


async def lock_server(conn: asyncpg.Connection, *, server_id: UUID) -> None:
    """Lock the server's row until the transaction ends (every change of its members,
    roles, channels and overrides takes it: they happen one at a time)."""
    await conn.execute("SELECT 1 FROM servers WHERE id = $1 FOR UPDATE", server_id)


async def lock_servers(conn: asyncpg.Connection, *, server_ids: list[UUID]) -> None:
    """lock_server for each of these servers, in id order, in one statement."""
    await conn.execute(
        "SELECT 1 FROM servers WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", server_ids
    )


async def key_share_channel_server(conn: asyncpg.Connection, *, channel_id: UUID) -> None:
    """Lock the server of a channel (none for a conversation) FOR KEY SHARE until the
    transaction ends, as an audit entry's foreign key will: taken before the channel's
    row, in the order of every change of the server (server, then its channels)."""
    await conn.execute(
        "SELECT 1 FROM servers WHERE id = (SELECT server_id FROM channels WHERE id = $1)"
        " FOR KEY SHARE",
        channel_id,
    )


async def share_lock_servers(conn: asyncpg.Connection, *, server_ids: list[UUID]) -> None:
    """Share-lock these servers' rows (in id order) until the transaction ends: it then
    runs before or after any change that locks one of them, never among it."""
    await conn.execute(
        "SELECT 1 FROM servers WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE", server_ids
    )


@dataclass(frozen=True)
class VoiceFlags:
    """A member's server mute and deafen (set by moderators, kept on the membership)."""

    mute: bool
    deaf: bool


async def get_member_voice_flags(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID
) -> VoiceFlags | None:
    """None if the user is not a member."""
    record = await conn.fetchrow(
        """
        SELECT voice_mute AS mute, voice_deaf AS deaf FROM server_members
        WHERE server_id = $1 AND user_id = $2
        """,
        server_id,
        user_id,
    )
    return maybe(VoiceFlags, record)


async def update_member_voice_flags(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    user_id: UUID,
    mute: bool | None,
    deaf: bool | None,
) -> VoiceFlags | None:
    """Set the given flags (None leaves one as it is); None if the user is not a
    member."""
    record = await conn.fetchrow(
        """
        UPDATE server_members SET voice_mute = COALESCE($3, voice_mute),
                                  voice_deaf = COALESCE($4, voice_deaf)
        WHERE server_id = $1 AND user_id = $2
        RETURNING voice_mute AS mute, voice_deaf AS deaf
        """,
        server_id,
        user_id,
        mute,
        deaf,
    )
    return maybe(VoiceFlags, record)


_CONNECTED_MEMBERS = """
    SELECT u.id AS user_id, u.status, u.status_text, true AS connected
    FROM server_members m JOIN users u ON u.id = m.user_id
    WHERE m.server_id = $1
      -- (a bound of the key, as list_members' is)
      AND m.user_id > COALESCE($4::uuid, '00000000-0000-0000-0000-000000000000')
      AND u.status <> 'invisible'
      AND EXISTS (SELECT 1 FROM presence_connections c
                  JOIN presence_processes p ON p.id = c.process_id
                  WHERE c.user_id = u.id
                    AND p.seen_at >= now() - make_interval(secs => $2))
    ORDER BY m.user_id
    LIMIT $3
"""


async def list_connected_members(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    timeout_s: float,
    after: UUID | None,
    limit: int,
) -> list[PresenceRow]:
    """A page of the server's members who are connected (on a live process) and not
    invisible, by user id: their presence rows."""
    return many(
        PresenceRow, await conn.fetch(_CONNECTED_MEMBERS, server_id, timeout_s, limit, after)
    )


async def list_member_ids_by_nickname(
    conn: asyncpg.Connection, *, server_id: UUID, names: list[str], limit: int
) -> dict[str, list[UUID]]:
    """Of each of these names, as given: up to `limit` members of the server whose
    nickname it is, folded as people search folds names (xf_fold_name: case, Latin
    accents, full-width forms), read by key (migration 0061); a name nobody has is
    left out."""
    records = await conn.fetch(
        """
        SELECT n.name, m.user_id
        FROM unnest($2::text[]) AS n(name)
        CROSS JOIN LATERAL (
            SELECT sm.user_id FROM server_members sm
            WHERE sm.server_id = $1 AND sm.nickname IS NOT NULL
              AND xf_fold_name(sm.nickname) = xf_fold_name(n.name)
            LIMIT $3) m
        """,
        server_id,
        sorted(set(names)),
        limit,
    )
    found: dict[str, list[UUID]] = {}
    for r in records:
        found.setdefault(r["name"], []).append(r["user_id"])
    return found
