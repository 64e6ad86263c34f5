from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import maybe, one


@dataclass(frozen=True)
class ServerRow:
    id: UUID
    name: str
    owner_id: UUID
    description: str | None
    icon_url: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RoleRow:
    id: UUID
    server_id: UUID
    name: str
    permissions: int
    position: int
    color: int
    hoist: bool
    mentionable: bool
    is_default: bool


SERVER_COLUMNS = "id, name, owner_id, description, icon_url, created_at, updated_at"
ROLE_COLUMNS = "id, server_id, name, permissions, position, color, hoist, mentionable, is_default"


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
        RETURNING {SERVER_COLUMNS}
        """,
        server_id,
        name,
        owner_id,
        description,
    )
    return one(ServerRow, record)


async def get_server(conn: asyncpg.Connection, *, server_id: UUID) -> ServerRow | None:
    record = await conn.fetchrow(f"SELECT {SERVER_COLUMNS} FROM servers WHERE id = $1", server_id)
    return maybe(ServerRow, record)


async def delete_server(conn: asyncpg.Connection, *, server_id: UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM servers WHERE id = $1 RETURNING true", server_id))


async def insert_server_member(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, nickname: str | None = None
) -> None:
    await conn.execute(
        "INSERT INTO server_members (server_id, user_id, nickname) VALUES ($1, $2, $3)",
        server_id,
        user_id,
        nickname,
    )


async def insert_role(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    name: str,
    permissions: int,
    position: int,
    color: int = 0,
    hoist: bool = False,
    mentionable: bool = False,
    is_default: bool = False,
    role_id: UUID | None = None,
) -> RoleRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO roles (id, server_id, name, permissions, position, color, hoist, mentionable,
                           is_default)
        VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING {ROLE_COLUMNS}
        """,
        role_id,
        server_id,
        name,
        permissions,
        position,
        color,
        hoist,
        mentionable,
        is_default,
    )
    return one(RoleRow, record)


async def insert_member_role(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, role_id: UUID
) -> None:
    await conn.execute(
        "INSERT INTO member_roles (server_id, user_id, role_id) VALUES ($1, $2, $3)",
        server_id,
        user_id,
        role_id,
    )


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
