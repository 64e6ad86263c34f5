from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe, one

USER_COLUMNS = (
    "id, username, email, password_hash, display_name, avatar_url, status, status_text, "
    "created_at, updated_at"
)


@dataclass(frozen=True)
class UserRow:
    id: UUID
    username: str
    email: str
    password_hash: str
    display_name: str | None
    avatar_url: str | None
    status: str
    status_text: str | None
    created_at: datetime
    updated_at: datetime


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    email: str,
    password_hash: str,
    display_name: str | None = None,
    user_id: UUID | None = None,
) -> UserRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO users (id, username, email, password_hash, display_name)
        VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5)
        RETURNING {USER_COLUMNS}
        """,
        user_id,
        username,
        email,
        password_hash,
        display_name,
    )
    return one(UserRow, record)


async def get_user(conn: asyncpg.Connection, *, user_id: UUID) -> UserRow | None:
    record = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return maybe(UserRow, record)


async def get_user_by_username(conn: asyncpg.Connection, *, username: str) -> UserRow | None:
    record = await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)", username
    )
    return maybe(UserRow, record)


async def count_users(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users"))
