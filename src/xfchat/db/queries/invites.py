from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe

INVITE_COLUMNS = "code, server_id, channel_id, inviter_id, max_uses, uses, expires_at, created_at"
# THE rule for an invite that is still there: not expired, not used up. Every lookup,
# the list, a use and a revoke apply it, so one past it is gone everywhere at once,
# though its row stays until count_invites deletes it.
USABLE = "(expires_at IS NULL OR expires_at > now()) AND (max_uses IS NULL OR uses < max_uses)"


@dataclass(frozen=True)
class InviteRow:
    code: str
    server_id: UUID
    channel_id: UUID | None
    inviter_id: UUID | None
    max_uses: int | None
    uses: int
    expires_at: datetime | None
    created_at: datetime


async def insert_invite(
    conn: asyncpg.Connection,
    *,
    code: str,
    server_id: UUID,
    channel_id: UUID | None,
    inviter_id: UUID,
    max_uses: int | None,
    max_age_s: int | None,
) -> InviteRow | None:
    """A new invite; None if the code is taken (the caller draws another)."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO invites (code, server_id, channel_id, inviter_id, max_uses, expires_at)
        VALUES ($1, $2, $3, $4, $5,
                CASE WHEN $6::int IS NULL THEN NULL ELSE now() + make_interval(secs => $6) END)
        ON CONFLICT DO NOTHING
        RETURNING {INVITE_COLUMNS}
        """,
        code,
        server_id,
        channel_id,
        inviter_id,
        max_uses,
        max_age_s,
    )
    return maybe(InviteRow, record)


async def get_invite(conn: asyncpg.Connection, *, code: str) -> InviteRow | None:
    """An invite that can still be used (not expired, not used up)."""
    record = await conn.fetchrow(
        f"""
        SELECT {INVITE_COLUMNS} FROM invites WHERE code = $1 AND {USABLE}
        """,
        code,
    )
    return maybe(InviteRow, record)


async def use_invite(conn: asyncpg.Connection, *, code: str) -> InviteRow | None:
    """Count one use of an invite, if it can still be used (atomically: two joins on the
    last use cannot both pass)."""
    record = await conn.fetchrow(
        f"""
        UPDATE invites SET uses = uses + 1 WHERE code = $1 AND {USABLE}
        RETURNING {INVITE_COLUMNS}
        """,
        code,
    )
    return maybe(InviteRow, record)


async def get_server_invite(
    conn: asyncpg.Connection, *, server_id: UUID, code: str
) -> InviteRow | None:
    """One of the server's invites that can still be used."""
    record = await conn.fetchrow(
        f"SELECT {INVITE_COLUMNS} FROM invites WHERE server_id = $1 AND code = $2 AND {USABLE}",
        server_id,
        code,
    )
    return maybe(InviteRow, record)


async def list_invites(conn: asyncpg.Connection, *, server_id: UUID) -> list[InviteRow]:
    """The server's invites that can still be used, newest first."""
    records = await conn.fetch(
        f"""
        SELECT {INVITE_COLUMNS} FROM invites WHERE server_id = $1 AND {USABLE}
        ORDER BY created_at DESC
        """,
        server_id,
    )
    return many(InviteRow, records)


async def count_invites(
    conn: asyncpg.Connection, *, server_id: UUID, inviter_id: UUID | None = None
) -> int:
    """The server's usable invites (of one inviter if given); expired and used-up ones
    are deleted first."""
    await conn.execute(f"DELETE FROM invites WHERE server_id = $1 AND NOT ({USABLE})", server_id)
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM invites WHERE server_id = $1"
            " AND ($2::uuid IS NULL OR inviter_id = $2)",
            server_id,
            inviter_id,
        )
    )


async def delete_invite(
    conn: asyncpg.Connection, *, server_id: UUID, code: str
) -> InviteRow | None:
    record = await conn.fetchrow(
        f"DELETE FROM invites WHERE server_id = $1 AND code = $2 RETURNING {INVITE_COLUMNS}",
        server_id,
        code,
    )
    return maybe(InviteRow, record)
