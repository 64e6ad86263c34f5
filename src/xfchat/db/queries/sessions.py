from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one
from xfchat.db.queries.users import USER_COLUMNS, UserRow

USER_COLUMNS_OF_U = ", ".join(f"u.{c.strip()}" for c in USER_COLUMNS.split(","))

SESSION_COLUMNS = (
    "id, user_id, user_agent, ip, created_at, last_used_at, expires_at, revoked_at, revoked_reason"
)


@dataclass(frozen=True)
class SessionRow:
    id: UUID
    user_id: UUID
    user_agent: str | None
    ip: IPv4Address | IPv6Address | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


REFRESH_ROW_COLUMNS = """token_hash, session_id, generation, issued_at, used_at,
    extract(epoch FROM now() - used_at)::float8 AS used_ago_s"""


@dataclass(frozen=True)
class RefreshTokenRow:
    token_hash: bytes
    session_id: UUID
    generation: int
    issued_at: datetime
    used_at: datetime | None
    used_ago_s: float | None  # seconds since it was used, by the database's clock


async def insert_session(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    user_agent: str | None,
    ip: str | None,
    ttl_s: float,
) -> SessionRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO sessions (user_id, user_agent, ip, expires_at)
        VALUES ($1, $2, $3::inet, now() + make_interval(secs => $4))
        RETURNING {SESSION_COLUMNS}
        """,
        user_id,
        user_agent,
        ip,
        ttl_s,
    )
    return one(SessionRow, record)


async def insert_refresh_token(
    conn: asyncpg.Connection, *, token_hash: bytes, session_id: UUID, generation: int
) -> datetime:
    """Record a self-describing refresh token (`<session>.<generation>.<chain>`: the only
    kind issued now); returns when it was issued."""
    issued: datetime = await conn.fetchval(
        """
        INSERT INTO refresh_tokens (token_hash, session_id, generation, self_describing)
        VALUES ($1, $2, $3, true)
        RETURNING issued_at
        """,
        token_hash,
        session_id,
        generation,
    )
    return issued


async def get_newest_refresh_token(
    conn: asyncpg.Connection, *, session_id: UUID
) -> RefreshTokenRow | None:
    """The session's refresh token of the highest generation (the one to use next)."""
    record = await conn.fetchrow(
        f"""
        SELECT {REFRESH_ROW_COLUMNS} FROM refresh_tokens WHERE session_id = $1
        ORDER BY generation DESC LIMIT 1
        """,
        session_id,
    )
    return maybe(RefreshTokenRow, record)


async def delete_replaced_refresh_tokens(
    conn: asyncpg.Connection, *, session_id: UUID, below: int
) -> int:
    """Delete the session's self-describing refresh tokens of generations below `below`
    that a replay can still be told by (every generation from theirs up is
    self-describing: the chain can be walked from them to the newest). Rows of tokens of
    the old form, and those below them, are kept. Returns how many were deleted."""
    status: str = await conn.execute(
        """
        DELETE FROM refresh_tokens
        WHERE session_id = $1 AND generation < $2 AND self_describing
          AND generation > (
              SELECT coalesce(max(generation), 0) FROM refresh_tokens
              WHERE session_id = $1 AND NOT self_describing
          )
        """,
        session_id,
        below,
    )
    return int(status.split()[-1])


async def get_refresh_token_for_update(
    conn: asyncpg.Connection, *, token_hash: bytes
) -> RefreshTokenRow | None:
    """The token row, locked so that two refreshes with one token cannot both succeed."""
    record = await conn.fetchrow(
        f"SELECT {REFRESH_ROW_COLUMNS} FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )
    return maybe(RefreshTokenRow, record)


async def get_refresh_token_issued_at(
    conn: asyncpg.Connection, *, token_hash: bytes, session_id: UUID
) -> datetime | None:
    """When this session's refresh token with this hash was issued, if it exists and has
    not been used yet (None otherwise)."""
    value = await conn.fetchval(
        """
        SELECT issued_at FROM refresh_tokens
        WHERE token_hash = $1 AND session_id = $2 AND used_at IS NULL
        """,
        token_hash,
        session_id,
    )
    return value if isinstance(value, datetime) else None


async def mark_refresh_token_used(conn: asyncpg.Connection, *, token_hash: bytes) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", token_hash
    )


async def get_session(conn: asyncpg.Connection, *, session_id: UUID) -> SessionRow | None:
    record = await conn.fetchrow(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1", session_id
    )
    return maybe(SessionRow, record)


async def get_session_for_update(
    conn: asyncpg.Connection, *, session_id: UUID
) -> SessionRow | None:
    record = await conn.fetchrow(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE", session_id
    )
    return maybe(SessionRow, record)


async def get_live_session_user(
    conn: asyncpg.Connection, *, session_id: UUID, user_id: UUID
) -> UserRow | None:
    """The user behind an access token, if its session is neither revoked nor expired."""
    record = await conn.fetchrow(
        f"""
        SELECT {USER_COLUMNS_OF_U}
        FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
        """,
        session_id,
        user_id,
    )
    return maybe(UserRow, record)


async def touch_session(
    conn: asyncpg.Connection, *, session_id: UUID, ttl_s: float | None = None
) -> None:
    """Record use; with `ttl_s`, also extend the session's life from now."""
    await conn.execute(
        """
        UPDATE sessions SET last_used_at = now(),
            expires_at = CASE WHEN $2::float8 IS NULL THEN expires_at
                              ELSE now() + make_interval(secs => $2::float8) END
        WHERE id = $1
        """,
        session_id,
        ttl_s,
    )


async def list_live_sessions(
    conn: asyncpg.Connection, *, user_id: UUID, limit: int
) -> list[SessionRow]:
    """The user's live sessions, newest first, at most `limit`."""
    records = await conn.fetch(
        f"""
        SELECT {SESSION_COLUMNS} FROM sessions
        WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
        ORDER BY created_at DESC
        LIMIT $2
        """,
        user_id,
        limit,
    )
    return many(SessionRow, records)


async def revoke_least_recently_used_sessions(
    conn: asyncpg.Connection, *, user_id: UUID, keep: int, reason: str
) -> list[UUID]:
    """Revoke the user's live sessions but the `keep` most recently used (by
    `last_used_at`); returns the ids revoked."""
    records = await conn.fetch(
        """
        UPDATE sessions SET revoked_at = now(), revoked_reason = $3
        WHERE id IN (
            SELECT id FROM sessions
            WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
            ORDER BY last_used_at DESC, created_at DESC, id DESC
            OFFSET $2
        ) AND revoked_at IS NULL
        RETURNING id
        """,
        user_id,
        keep,
        reason,
    )
    return [r["id"] for r in records]


async def revoke_session(conn: asyncpg.Connection, *, session_id: UUID, reason: str) -> bool:
    """Revoke one session; False if it was already revoked."""
    return bool(
        await conn.fetchval(
            """
            UPDATE sessions SET revoked_at = now(), revoked_reason = $2
            WHERE id = $1 AND revoked_at IS NULL RETURNING true
            """,
            session_id,
            reason,
        )
    )


async def revoke_other_sessions(
    conn: asyncpg.Connection, *, user_id: UUID, keep: UUID | None, reason: str
) -> list[UUID]:
    records = await conn.fetch(
        """
        UPDATE sessions SET revoked_at = now(), revoked_reason = $3
        WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2
        RETURNING id
        """,
        user_id,
        keep,
        reason,
    )
    return [r["id"] for r in records]


async def has_familiar_session(
    conn: asyncpg.Connection, *, user_id: UUID, networks: list[str], within_days: float
) -> bool:
    """Whether the user logged in from an address in one of `networks` in the last
    `within_days` days, in a session still live or ended by logging out (not one revoked:
    it may have been a thief's)."""
    return bool(
        await conn.fetchval(
            """
            SELECT EXISTS (
                SELECT 1 FROM sessions
                WHERE user_id = $1 AND ip <<= ANY ($2::inet[])
                  AND created_at > now() - make_interval(secs => $3)
                  AND (revoked_at IS NULL OR revoked_reason = 'logout')
            )
            """,
            user_id,
            networks,
            within_days * 86400,
        )
    )


async def lock_refresh_tokens_of_user(conn: asyncpg.Connection, *, user_id: UUID) -> None:
    """Lock the rows of the user's refresh tokens until the transaction ends: each
    session's newest first, so never one while waiting for a newer one of its session,
    which a refresh holds while it deletes the older ones (delete_replaced_refresh_tokens)."""
    await conn.execute(
        """
        SELECT 1 FROM refresh_tokens
        WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)
        ORDER BY session_id, generation DESC
        FOR UPDATE
        """,
        user_id,
    )


async def forget_session_clients(conn: asyncpg.Connection, *, user_id: UUID) -> None:
    """Drop where the user's sessions came from (address, device), and the refresh
    tokens' rows: for a deleted account, whose ended sessions stay only so that their
    tokens are refused (SESSION_REVOKED) until retention deletes them."""
    await conn.execute(
        """
        WITH tokens AS (
            DELETE FROM refresh_tokens
            WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)
        )
        UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = $1
        """,
        user_id,
    )


async def ended_sessions(conn: asyncpg.Connection, session_ids: list[UUID]) -> list[UUID]:
    """Those of these sessions that have ended: revoked, expired or deleted."""
    records = await conn.fetch(
        """
        SELECT u.id FROM unnest($1::uuid[]) AS u(id)
        LEFT JOIN sessions s ON s.id = u.id
        WHERE s.id IS NULL OR s.revoked_at IS NOT NULL OR s.expires_at <= now()
        """,
        session_ids,
    )
    return [r["id"] for r in records]
