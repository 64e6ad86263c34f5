from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe


@dataclass(frozen=True)
class TotpRow:
    user_id: UUID
    secret: str  # as stored: sealed (domain/sealed_secrets.py), or base32 before 0029
    confirmed_at: datetime | None  # None while being set up
    last_step: int  # the last time step accepted


async def get_totp(conn: asyncpg.Connection, *, user_id: UUID) -> TotpRow | None:
    record = await conn.fetchrow(
        "SELECT user_id, secret, confirmed_at, last_step FROM user_totp WHERE user_id = $1",
        user_id,
    )
    return maybe(TotpRow, record)


async def lock_totp(conn: asyncpg.Connection, *, user_id: UUID) -> TotpRow | None:
    """The user's authenticator, its row locked until the transaction ends (the codes
    accepted so far cannot change meanwhile)."""
    record = await conn.fetchrow(
        "SELECT user_id, secret, confirmed_at, last_step FROM user_totp"
        " WHERE user_id = $1 FOR UPDATE",
        user_id,
    )
    return maybe(TotpRow, record)


async def upsert_pending_totp(conn: asyncpg.Connection, *, user_id: UUID, secret: str) -> bool:
    """Set up (or set up again) an authenticator not yet confirmed; False if the user
    has a confirmed one (left as it is)."""
    return bool(
        await conn.fetchval(
            """
            INSERT INTO user_totp (user_id, secret) VALUES ($1, $2)
            ON CONFLICT (user_id) DO UPDATE
                SET secret = EXCLUDED.secret, created_at = now(), last_step = 0
                WHERE user_totp.confirmed_at IS NULL
            RETURNING true
            """,
            user_id,
            secret,
        )
    )


async def confirm_totp(conn: asyncpg.Connection, *, user_id: UUID, step: int) -> bool:
    """Turn a pending authenticator on, its code of time step `step` spent."""
    return bool(
        await conn.fetchval(
            """
            UPDATE user_totp SET confirmed_at = now(), last_step = $2
            WHERE user_id = $1 AND confirmed_at IS NULL RETURNING true
            """,
            user_id,
            step,
        )
    )


async def spend_totp_step(conn: asyncpg.Connection, *, user_id: UUID, step: int) -> bool:
    """Accept the code of time step `step` once: False if it (or a later one) was
    already accepted."""
    return bool(
        await conn.fetchval(
            """
            UPDATE user_totp SET last_step = $2
            WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2 RETURNING true
            """,
            user_id,
            step,
        )
    )


async def delete_totp(conn: asyncpg.Connection, *, user_id: UUID) -> None:
    await conn.execute("DELETE FROM user_totp WHERE user_id = $1", user_id)


async def replace_recovery_codes(
    conn: asyncpg.Connection, *, user_id: UUID, code_hashes: list[bytes]
) -> None:
    """The user's recovery codes become these (the earlier ones stop working)."""
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
    await conn.execute(
        """
        INSERT INTO recovery_codes (user_id, code_hash)
        SELECT $1, h FROM unnest($2::bytea[]) AS h
        """,
        user_id,
        code_hashes,
    )


async def spend_recovery_code(conn: asyncpg.Connection, *, user_id: UUID, code_hash: bytes) -> bool:
    """Use an unused recovery code up; False if there is no such unused code."""
    return bool(
        await conn.fetchval(
            """
            UPDATE recovery_codes SET used_at = now()
            WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING true
            """,
            user_id,
            code_hash,
        )
    )


async def count_unused_recovery_codes(conn: asyncpg.Connection, *, user_id: UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            user_id,
        )
    )


async def unused_recovery_codes(conn: asyncpg.Connection, *, user_id: UUID) -> str:
    """The unused recovery codes' hashes, in order, as one text: it changes when one is
    spent and when new ones are made (their count alone came back to ten then)."""
    return str(
        await conn.fetchval(
            "SELECT coalesce(string_agg(encode(code_hash, 'hex'), ',' ORDER BY code_hash), '')"
            " FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            user_id,
        )
    )


async def delete_recovery_codes(conn: asyncpg.Connection, *, user_id: UUID) -> None:
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)


@dataclass(frozen=True)
class StoredSecret:
    user_id: UUID
    secret: str  # as stored
    confirmed: bool  # False while being set up


@dataclass(frozen=True)
class SecretChange:
    user_id: UUID
    old: str
    new: str


async def list_secrets_to_seal(
    conn: asyncpg.Connection, *, prefix: str, after: UUID | None, limit: int
) -> list[StoredSecret]:
    """Up to `limit` stored secrets (by user id, past `after`) that do not start with
    `prefix` (the current key's): in the clear, or under another key."""
    rows = await conn.fetch(
        """
        SELECT user_id, secret, confirmed_at IS NOT NULL AS confirmed FROM user_totp
        WHERE ($1::uuid IS NULL OR user_id > $1) AND NOT starts_with(secret, $2)
        ORDER BY user_id LIMIT $3
        """,
        after,
        prefix,
        limit,
    )
    return [StoredSecret(**r) for r in rows]


async def update_secrets(conn: asyncpg.Connection, *, changes: list[SecretChange]) -> int:
    """Store each change's new secret where the old one still is; how many were."""
    return int(
        await conn.fetchval(
            """
            WITH c AS (
                UPDATE user_totp t SET secret = n.new
                FROM unnest($1::uuid[], $2::text[], $3::text[]) AS n(user_id, old, new)
                WHERE t.user_id = n.user_id AND t.secret = n.old
                RETURNING 1
            )
            SELECT count(*) FROM c
            """,
            [c.user_id for c in changes],
            [c.old for c in changes],
            [c.new for c in changes],
        )
    )


async def delete_pending_secrets(conn: asyncpg.Connection, *, stale: list[StoredSecret]) -> int:
    """Drop these set-ups not yet confirmed, where each is still as listed; how many."""
    return int(
        await conn.fetchval(
            """
            WITH d AS (
                DELETE FROM user_totp t USING unnest($1::uuid[], $2::text[]) AS n(user_id, old)
                WHERE t.user_id = n.user_id AND t.secret = n.old AND t.confirmed_at IS NULL
                RETURNING 1
            )
            SELECT count(*) FROM d
            """,
            [s.user_id for s in stale],
            [s.secret for s in stale],
        )
    )
