"""What the retention job deletes: rows nothing reads any more, a bounded batch per
statement (rows another process's run is deleting are skipped, not waited for, so two
runs share the work and neither takes a short batch for the end)."""

from __future__ import annotations

import asyncpg


def _count(status: str) -> int:
    """How many rows a DELETE's status ("DELETE n") says it removed."""
    return int(status.split()[-1])


async def delete_ended_sessions(
    conn: asyncpg.Connection, *, ended_before_s: float, limit: int
) -> int:
    """Sessions revoked or expired more than `ended_before_s` seconds ago (their refresh
    tokens go with them); how many. One that a voice state still names is kept: a
    gateway connection, authenticated once, outlives its session's expiry, and its state
    ends with it, announced (domain/voice.py); deleting the session took the state
    along (ON DELETE CASCADE) and told nobody. It goes at a run after the state ends."""
    status: str = await conn.execute(
        """
        DELETE FROM sessions WHERE id IN (
            SELECT id FROM sessions s
            WHERE coalesce(revoked_at, expires_at) < now() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT 1 FROM voice_states v WHERE v.session_id = s.id)
            LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        ended_before_s,
        limit,
    )
    return _count(status)


async def delete_answered_friend_requests(
    conn: asyncpg.Connection, *, answered_before_s: float, limit: int
) -> int:
    """Friend requests accepted, declined or cancelled more than `answered_before_s`
    seconds ago; how many."""
    status: str = await conn.execute(
        """
        DELETE FROM friend_requests WHERE id IN (
            SELECT id FROM friend_requests
            WHERE status <> 'pending'
              AND responded_at < now() - make_interval(secs => $1)
            LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        answered_before_s,
        limit,
    )
    return _count(status)


async def delete_usage_days(conn: asyncpg.Connection, *, keep_days: int, limit: int) -> int:
    """Usage rows of UTC days more than `keep_days` days before today; how many."""
    status: str = await conn.execute(
        """
        DELETE FROM usage_tracking WHERE (user_id, day) IN (
            SELECT user_id, day FROM usage_tracking
            WHERE day < (now() AT TIME ZONE 'UTC')::date - $1::int
            LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        keep_days,
        limit,
    )
    return _count(status)


async def delete_audit_entries(conn: asyncpg.Connection, *, older_than_s: float, limit: int) -> int:
    """Audit log entries written more than `older_than_s` seconds ago; how many."""
    status: str = await conn.execute(
        """
        DELETE FROM audit_log WHERE id IN (
            SELECT id FROM audit_log
            WHERE created_at < now() - make_interval(secs => $1)
            LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        older_than_s,
        limit,
    )
    return _count(status)


async def delete_orphan_streams(conn: asyncpg.Connection, *, limit: int) -> int:
    """Event streams of deleted channels and servers whose events retention has removed
    (nothing can be resumed from them, nothing writes to them again); how many."""
    status: str = await conn.execute(
        """
        DELETE FROM event_streams WHERE id IN (
            SELECT s.id FROM event_streams s
            WHERE (s.kind = 'channel'
                   AND NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = s.entity_id)
                OR s.kind = 'server'
                   AND NOT EXISTS (SELECT 1 FROM servers v WHERE v.id = s.entity_id))
              AND NOT EXISTS (SELECT 1 FROM event_commits e WHERE e.stream_id = s.id)
              AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.id)
            LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        """,
        limit,
    )
    return _count(status)


async def delete_ended_mutes(conn: asyncpg.Connection, *, limit: int) -> int:
    """Mutes whose time has passed (readers skip them already); how many."""
    status: str = await conn.execute(
        """
        DELETE FROM mutes WHERE (user_id, target_id) IN (
            SELECT user_id, target_id FROM mutes WHERE muted_until <= now()
            LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        """,
        limit,
    )
    return _count(status)


async def delete_deleted_account_leftovers(conn: asyncpg.Connection, *, limit: int) -> int:
    """Usage days of deleted accounts (a process counts in memory and may write the
    deletion request's own count after it), friend requests naming one (a request
    made while the deletion committed), and, should a write slip past the deletion's
    checks, the other rows it deletes (users.delete_personal_rows): read positions,
    authenticators, recovery codes, mutes, notification settings, kept timeouts; how
    many."""
    removed = await conn.fetchval(
        """
        WITH usage AS (
            DELETE FROM usage_tracking WHERE (user_id, day) IN (
                SELECT t.user_id, t.day FROM usage_tracking t JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        ), requests AS (
            DELETE FROM friend_requests WHERE id IN (
                SELECT r.id FROM friend_requests r JOIN users u
                    ON u.id = r.from_user_id OR u.id = r.to_user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF r SKIP LOCKED
            ) RETURNING 1
        ), reads AS (
            DELETE FROM read_states WHERE (user_id, channel_id) IN (
                SELECT t.user_id, t.channel_id FROM read_states t JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        ), totp AS (
            DELETE FROM user_totp WHERE user_id IN (
                SELECT t.user_id FROM user_totp t JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        ), codes AS (
            DELETE FROM recovery_codes WHERE (user_id, code_hash) IN (
                SELECT t.user_id, t.code_hash FROM recovery_codes t JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        ), mutes AS (
            DELETE FROM mutes WHERE (user_id, target_id) IN (
                SELECT t.user_id, t.target_id FROM mutes t JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        ), notify AS (
            DELETE FROM notification_settings WHERE (user_id, target_id) IN (
                SELECT t.user_id, t.target_id FROM notification_settings t
                JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        ), timeouts AS (
            DELETE FROM lingering_timeouts WHERE (server_id, user_id) IN (
                SELECT t.server_id, t.user_id FROM lingering_timeouts t
                JOIN users u ON u.id = t.user_id
                WHERE u.deleted_at IS NOT NULL
                LIMIT $1 FOR UPDATE OF t SKIP LOCKED
            ) RETURNING 1
        )
        SELECT (SELECT count(*) FROM usage) + (SELECT count(*) FROM requests)
             + (SELECT count(*) FROM reads) + (SELECT count(*) FROM totp)
             + (SELECT count(*) FROM codes) + (SELECT count(*) FROM timeouts)
             + (SELECT count(*) FROM mutes) + (SELECT count(*) FROM notify)
        """,
        limit,
    )
    return int(removed)
