"""Roles and who holds them."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one


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


ROLE_COLUMNS = "id, server_id, name, permissions, position, color, hoist, mentionable, is_default"
ROLE_COLUMNS_OF_R = ", ".join("r." + c.strip() for c in ROLE_COLUMNS.split(","))


async def list_roles(conn: asyncpg.Connection, *, server_id: UUID) -> list[RoleRow]:
    """A server's roles, highest first (@everyone last)."""
    records = await conn.fetch(
        f"SELECT {ROLE_COLUMNS} FROM roles WHERE server_id = $1 ORDER BY position DESC, id",
        server_id,
    )
    return many(RoleRow, records)


async def list_roles_of_servers(
    conn: asyncpg.Connection, *, server_ids: list[UUID]
) -> list[RoleRow]:
    """The roles of several servers, each server's highest first."""
    records = await conn.fetch(
        f"""
        SELECT {ROLE_COLUMNS} FROM roles WHERE server_id = ANY($1::uuid[])
        ORDER BY server_id, position DESC, id
        """,
        server_ids,
    )
    return many(RoleRow, records)


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


async def delete_member_role(
    conn: asyncpg.Connection, *, server_id: UUID, user_id: UUID, role_id: UUID
) -> bool:
    return bool(
        await conn.fetchval(
            """
            DELETE FROM member_roles WHERE server_id = $1 AND user_id = $2 AND role_id = $3
            RETURNING true
            """,
            server_id,
            user_id,
            role_id,
        )
    )


async def get_role(conn: asyncpg.Connection, *, server_id: UUID, role_id: UUID) -> RoleRow | None:
    record = await conn.fetchrow(
        f"SELECT {ROLE_COLUMNS} FROM roles WHERE id = $1 AND server_id = $2", role_id, server_id
    )
    return maybe(RoleRow, record)


async def count_roles(conn: asyncpg.Connection, *, server_id: UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM roles WHERE server_id = $1", server_id))


async def update_role(
    conn: asyncpg.Connection,
    *,
    role_id: UUID,
    name: str | None = None,
    permissions: int | None = None,
    color: int | None = None,
    hoist: bool | None = None,
    mentionable: bool | None = None,
) -> RoleRow | None:
    """Change the given fields (None keeps one)."""
    record = await conn.fetchrow(
        f"""
        UPDATE roles SET name = COALESCE($2, name), permissions = COALESCE($3, permissions),
                         color = COALESCE($4, color), hoist = COALESCE($5, hoist),
                         mentionable = COALESCE($6, mentionable), updated_at = now()
        WHERE id = $1 RETURNING {ROLE_COLUMNS}
        """,
        role_id,
        name,
        permissions,
        color,
        hoist,
        mentionable,
    )
    return maybe(RoleRow, record)


async def update_role_positions(
    conn: asyncpg.Connection, *, server_id: UUID, role_ids: list[UUID], positions: list[int]
) -> list[RoleRow]:
    """Set several roles' positions at once (only roles of this server)."""
    records = await conn.fetch(
        f"""
        UPDATE roles r SET position = p.position, updated_at = now()
        FROM unnest($2::uuid[], $3::int[]) AS p(id, position)
        WHERE r.id = p.id AND r.server_id = $1
        RETURNING {ROLE_COLUMNS_OF_R}
        """,
        server_id,
        role_ids,
        positions,
    )
    return many(RoleRow, records)


async def delete_role(conn: asyncpg.Connection, *, role_id: UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM roles WHERE id = $1 RETURNING true", role_id))


async def list_role_holders(conn: asyncpg.Connection, *, role_id: UUID) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT user_id FROM member_roles WHERE role_id = $1 ORDER BY user_id", role_id
    )
    return [r["user_id"] for r in rows]


async def list_mentionable(
    conn: asyncpg.Connection, *, server_id: UUID, role_ids: list[UUID]
) -> dict[UUID, bool]:
    """Of `role_ids`, the server's roles but @everyone, each with its mentionable flag."""
    records = await conn.fetch(
        """
        SELECT id, mentionable FROM roles
        WHERE server_id = $1 AND id = ANY($2::uuid[]) AND NOT is_default
        """,
        server_id,
        role_ids,
    )
    return {r["id"]: r["mentionable"] for r in records}


async def list_user_role_ids(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    """Every role the user holds, in any server (@everyone not counted)."""
    # (through the user's memberships, each to member_roles' key: no index of
    # member_roles starts with user_id, and this was a scan of the whole table; OFFSET 0
    # keeps a generic plan from reading member_roles first, by user_id alone)
    rows = await conn.fetch(
        """
        SELECT mr.role_id FROM server_members sm
        CROSS JOIN LATERAL (
            SELECT role_id FROM member_roles
            WHERE server_id = sm.server_id AND user_id = sm.user_id OFFSET 0
        ) mr
        WHERE sm.user_id = $1
        """,
        user_id,
    )
    return [r["role_id"] for r in rows]
