"""Voice states: who is in which voice channel (or conversation call), held by which
gateway connection on which server process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe
from xfchat.db.queries.access import DIRECT_CLOSED

VOICE_COLUMNS = (
    "user_id, channel_id, server_id, session_id, process_id, connection_id, self_mute, "
    "self_deaf, self_video, server_mute, server_deaf, suppress, joined_at, updated_at"
)
VOICE_COLUMNS_OF_V = ", ".join("v." + c.strip() for c in VOICE_COLUMNS.split(","))


@dataclass(frozen=True)
class VoiceStateRow:
    user_id: UUID
    channel_id: UUID
    server_id: UUID | None
    session_id: UUID | None
    process_id: UUID
    connection_id: UUID
    self_mute: bool
    self_deaf: bool
    self_video: bool
    server_mute: bool
    server_deaf: bool
    suppress: bool  # the member lacks SPEAK in the channel
    joined_at: datetime
    updated_at: datetime


async def get_voice_state(
    conn: asyncpg.Connection, *, user_id: UUID, lock: bool = False
) -> VoiceStateRow | None:
    """The user's voice state (FOR UPDATE with `lock`)."""
    sql = f"SELECT {VOICE_COLUMNS} FROM voice_states WHERE user_id = $1"
    if lock:
        sql += " FOR UPDATE"
    return maybe(VoiceStateRow, await conn.fetchrow(sql, user_id))


async def list_voice_states_of_users(
    conn: asyncpg.Connection, *, user_ids: list[UUID], share: bool = False
) -> list[VoiceStateRow]:
    """These users' voice states; with `share`, share-locked (in user order) until the
    transaction ends: they cannot change or end meanwhile."""
    sql = f"SELECT {VOICE_COLUMNS} FROM voice_states WHERE user_id = ANY($1::uuid[])"
    if share:
        sql += " ORDER BY user_id FOR SHARE"
    return many(VoiceStateRow, await conn.fetch(sql, user_ids))


async def list_voice_states(
    conn: asyncpg.Connection, *, channel_ids: list[UUID]
) -> list[VoiceStateRow]:
    """Who is in these channels, in the order they joined."""
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"""
            SELECT {VOICE_COLUMNS} FROM voice_states WHERE channel_id = ANY($1::uuid[])
            ORDER BY joined_at, user_id
            """,
            channel_ids,
        ),
    )


async def list_voice_states_of_servers(
    conn: asyncpg.Connection, *, server_ids: list[UUID]
) -> list[VoiceStateRow]:
    """Who is in the voice channels of these servers, in the order they joined."""
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"""
            SELECT {VOICE_COLUMNS} FROM voice_states WHERE server_id = ANY($1::uuid[])
            ORDER BY joined_at, user_id
            """,
            server_ids,
        ),
    )


async def count_voice_states(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM voice_states WHERE channel_id = $1", channel_id)
    )


async def upsert_voice_state(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    channel_id: UUID,
    server_id: UUID | None,
    session_id: UUID | None,
    process_id: UUID,
    connection_id: UUID,
    self_mute: bool,
    self_deaf: bool,
    self_video: bool,
    server_mute: bool,
    server_deaf: bool,
    suppress: bool,
) -> VoiceStateRow:
    """Put the user in a channel (or change their state there); `joined_at` is kept
    while the channel stays the same."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO voice_states AS v (user_id, channel_id, server_id, session_id, process_id,
                                       connection_id, self_mute, self_deaf, self_video,
                                       server_mute, server_deaf, suppress)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (user_id) DO UPDATE SET
            channel_id = EXCLUDED.channel_id, server_id = EXCLUDED.server_id,
            session_id = EXCLUDED.session_id, process_id = EXCLUDED.process_id,
            connection_id = EXCLUDED.connection_id, self_mute = EXCLUDED.self_mute,
            self_deaf = EXCLUDED.self_deaf, self_video = EXCLUDED.self_video,
            server_mute = EXCLUDED.server_mute, server_deaf = EXCLUDED.server_deaf,
            suppress = EXCLUDED.suppress,
            joined_at = CASE WHEN v.channel_id = EXCLUDED.channel_id THEN v.joined_at
                             ELSE now() END,
            updated_at = now()
        RETURNING {VOICE_COLUMNS}
        """,
        user_id,
        channel_id,
        server_id,
        session_id,
        process_id,
        connection_id,
        self_mute,
        self_deaf,
        self_video,
        server_mute,
        server_deaf,
        suppress,
    )
    assert record is not None
    return VoiceStateRow(**dict(record))


async def update_voice_suppress(
    conn: asyncpg.Connection, *, user_ids: list[UUID], channel_ids: list[UUID], suppress: list[bool]
) -> list[VoiceStateRow]:
    """Set the suppress of user_ids[i]'s voice state to suppress[i] if it is still in
    channel_ids[i] and differs (locked in user order); the states changed."""
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"""
            WITH want AS (
                SELECT v.user_id, p.suppress FROM voice_states v
                JOIN unnest($1::uuid[], $2::uuid[], $3::boolean[]) AS p(user_id, channel_id,
                                                                        suppress)
                  ON v.user_id = p.user_id AND v.channel_id = p.channel_id
                WHERE v.suppress IS DISTINCT FROM p.suppress
                ORDER BY v.user_id FOR UPDATE OF v
            )
            UPDATE voice_states v SET suppress = want.suppress, updated_at = now()
            FROM want WHERE v.user_id = want.user_id
            RETURNING {VOICE_COLUMNS_OF_V}
            """,
            user_ids,
            channel_ids,
            suppress,
        ),
    )


async def update_server_voice_flags(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, mute: bool, deaf: bool
) -> VoiceStateRow | None:
    """Set the server mute and deafen of the user's voice state, if it is in this
    server."""
    record = await conn.fetchrow(
        f"""
        UPDATE voice_states SET server_mute = $3, server_deaf = $4, updated_at = now()
        WHERE user_id = $1 AND server_id = $2
        RETURNING {VOICE_COLUMNS}
        """,
        user_id,
        server_id,
        mute,
        deaf,
    )
    return maybe(VoiceStateRow, record)


async def delete_voice_state(
    conn: asyncpg.Connection, *, user_id: UUID, connection_id: UUID | None = None
) -> VoiceStateRow | None:
    """Drop the user's voice state (only if this connection holds it, when given)."""
    record = await conn.fetchrow(
        f"""
        DELETE FROM voice_states
        WHERE user_id = $1 AND ($2::uuid IS NULL OR connection_id = $2)
        RETURNING {VOICE_COLUMNS}
        """,
        user_id,
        connection_id,
    )
    return maybe(VoiceStateRow, record)


async def delete_member_voice_state(
    conn: asyncpg.Connection, *, server_ids: list[UUID], user_id: UUID
) -> list[VoiceStateRow]:
    """Drop the user's voice state if it is in one of these servers."""
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"""
            DELETE FROM voice_states WHERE user_id = $1 AND server_id = ANY($2::uuid[])
            RETURNING {VOICE_COLUMNS}
            """,
            user_id,
            server_ids,
        ),
    )


# Drop the voice state of $1[i] if its channel (or, below, its holding connection) is
# $2[i], locking them in user order, as everything that locks several voice states does.
_DELETE_IN_CHANNELS = f"""
    WITH gone AS (
        SELECT v.user_id FROM voice_states v
        JOIN unnest($1::uuid[], $2::uuid[]) AS p(user_id, value)
          ON v.user_id = p.user_id AND v.channel_id = p.value
        ORDER BY v.user_id FOR UPDATE OF v
    )
    DELETE FROM voice_states v USING gone WHERE v.user_id = gone.user_id
    RETURNING {VOICE_COLUMNS_OF_V}
"""
_DELETE_HELD = _DELETE_IN_CHANNELS.replace("v.channel_id = p.value", "v.connection_id = p.value")


async def delete_voice_states_in(
    conn: asyncpg.Connection, *, user_ids: list[UUID], channel_ids: list[UUID]
) -> list[VoiceStateRow]:
    """Drop the voice state of user_ids[i] if it is in channel_ids[i]."""
    return many(VoiceStateRow, await conn.fetch(_DELETE_IN_CHANNELS, user_ids, channel_ids))


# The voice states in these direct conversations closed to either of their two people
# (the access rule's DIRECT_CLOSED, which names the user `pr` and the channel `ch`): the
# call ends for both, locked in user order like every statement that drops several. (Only
# for the one it closed to, it told him which it was: a block closes it both ways, so
# she had left too; her choice of friends only leaves it open to her, so she was still
# in the call he could still read.)
_DELETE_CLOSED_DIRECT = f"""
    WITH gone AS (
        SELECT v.user_id FROM voice_states v
        JOIN channels ch ON ch.id = v.channel_id AND ch.kind = 'direct'
        WHERE v.channel_id = ANY($1::uuid[])
          AND EXISTS (SELECT 1 FROM (VALUES (ch.dm_user_low), (ch.dm_user_high)) AS pr(user_id)
                      WHERE {DIRECT_CLOSED})
        ORDER BY v.user_id FOR UPDATE OF v
    )
    DELETE FROM voice_states v USING gone WHERE v.user_id = gone.user_id
    RETURNING {VOICE_COLUMNS_OF_V}
"""


async def delete_closed_direct_voice_states(
    conn: asyncpg.Connection, *, channel_ids: list[UUID]
) -> list[VoiceStateRow]:
    """Drop the voice states in these direct conversations that are closed now to
    either of their people (a block, or one takes messages from friends only): the call
    ends for both, so that it never tells the one refused why."""
    return many(VoiceStateRow, await conn.fetch(_DELETE_CLOSED_DIRECT, channel_ids))


async def delete_held_voice_states(
    conn: asyncpg.Connection, *, user_ids: list[UUID], connection_ids: list[UUID]
) -> list[VoiceStateRow]:
    """Drop the voice state of user_ids[i] if connection_ids[i] still holds it."""
    return many(VoiceStateRow, await conn.fetch(_DELETE_HELD, user_ids, connection_ids))


async def list_connection_voice_states(
    conn: asyncpg.Connection, *, connection_id: UUID
) -> list[VoiceStateRow]:
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"SELECT {VOICE_COLUMNS} FROM voice_states WHERE connection_id = $1", connection_id
        ),
    )


async def list_process_voice_states(
    conn: asyncpg.Connection, *, process_id: UUID
) -> list[VoiceStateRow]:
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"SELECT {VOICE_COLUMNS} FROM voice_states WHERE process_id = $1", process_id
        ),
    )


async def list_orphaned_voice_states(
    conn: asyncpg.Connection, *, process_id: UUID, live: list[UUID], grace_s: float
) -> list[VoiceStateRow]:
    """This process's voice states whose connection is not among `live` any more, of
    those not written in the last `grace_s` seconds (a join that began as the live set
    was read is left alone)."""
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"""
            SELECT {VOICE_COLUMNS} FROM voice_states
            WHERE process_id = $1 AND NOT connection_id = ANY($2::uuid[])
              AND updated_at < now() - make_interval(secs => $3)
            """,
            process_id,
            live,
            grace_s,
        ),
    )


async def list_dead_process_voice_states(
    conn: asyncpg.Connection, *, sweeper: UUID, timeout_s: float
) -> list[VoiceStateRow]:
    """The voice states held by processes not seen for `timeout_s` (crashed), and those
    of processes with no presence row at all (one that crashed while the database had
    lost its unlogged tables), the latter only when the sweeper's own row is older than
    the timeout: then every live process has registered again since any such loss."""
    return many(
        VoiceStateRow,
        await conn.fetch(
            f"""
            SELECT {VOICE_COLUMNS_OF_V} FROM voice_states v
            WHERE v.process_id IN (
                      SELECT id FROM presence_processes
                      WHERE seen_at < now() - make_interval(secs => $2))
               OR (NOT EXISTS (SELECT 1 FROM presence_processes p WHERE p.id = v.process_id)
                   AND EXISTS (SELECT 1 FROM presence_processes me
                               WHERE me.id = $1
                                 AND me.started_at < now() - make_interval(secs => $2)))
            """,
            sweeper,
            timeout_s,
        ),
    )
