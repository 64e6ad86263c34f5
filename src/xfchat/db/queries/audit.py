from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

AUDIT_COLUMNS = (
    "id, server_id, actor_id, action, target_type, target_id, changes, reason, created_at"
)


@dataclass(frozen=True)
class AuditRow:
    id: int
    server_id: UUID
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: UUID | None
    changes: dict[str, Any]
    reason: str | None
    created_at: datetime


async def insert_audit_entry(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    actor_id: UUID,
    action: str,
    target_type: str | None,
    target_id: UUID | None,
    changes: dict[str, Any],
    reason: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (server_id, actor_id, action, target_type, target_id, changes, reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        server_id,
        actor_id,
        action,
        target_type,
        target_id,
        changes,
        reason,
    )


async def list_audit_entries(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    before: int | None,
    limit: int,
    actor_id: UUID | None,
    action: str | None,
) -> list[AuditRow]:
    """Newest first, before the entry `before`, of one actor and one action if given."""
    records = await conn.fetch(
        f"""
        SELECT {AUDIT_COLUMNS} FROM audit_log
        WHERE server_id = $1 AND ($2::bigint IS NULL OR id < $2)
          AND ($4::uuid IS NULL OR actor_id = $4) AND ($5::text IS NULL OR action = $5)
        ORDER BY id DESC LIMIT $3
        """,
        server_id,
        before,
        limit,
        actor_id,
        action,
    )
    return [AuditRow(**dict(r)) for r in records]
