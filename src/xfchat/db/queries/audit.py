from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

AUDIT_COLUMNS = (
    "id, server_id, actor_id, action, target_type, target_id, changes, diff, reason, created_at"
)

LAST_ID = 2**63 - 1  # (no `before`: from the newest)
# A server's entries newest first before $2, $3 at most (audit_log_server_idx), of one
# actor (audit_log_actor_idx), one action (audit_log_action_idx) or both.
AUDIT_ALL = f"""
SELECT {AUDIT_COLUMNS} FROM audit_log
WHERE server_id = $1 AND id < $2
ORDER BY id DESC LIMIT $3
"""
AUDIT_BY_ACTOR = f"""
SELECT {AUDIT_COLUMNS} FROM audit_log
WHERE actor_id = $4 AND server_id = $1 AND id < $2
ORDER BY id DESC LIMIT $3
"""
AUDIT_BY_ACTION = f"""
SELECT {AUDIT_COLUMNS} FROM audit_log
WHERE server_id = $1 AND action = $4 AND id < $2
ORDER BY id DESC LIMIT $3
"""
AUDIT_BY_ACTOR_AND_ACTION = f"""
SELECT {AUDIT_COLUMNS} FROM audit_log
WHERE actor_id = $4 AND server_id = $1 AND action = $5 AND id < $2
ORDER BY id DESC LIMIT $3
"""


@dataclass(frozen=True)
class AuditRow:
    id: int
    server_id: UUID
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: UUID | None
    changes: dict[str, Any]
    # Each changed field's {key, old_value, new_value}; None for an entry written before
    # they were kept (migration 0060) and for an action that changes no fields.
    diff: list[dict[str, Any]] | None
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
    diff: list[dict[str, Any]] | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log
            (server_id, actor_id, action, target_type, target_id, changes, reason, diff)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        server_id,
        actor_id,
        action,
        target_type,
        target_id,
        changes,
        reason,
        diff,
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
    # (a statement per kind of filter: the pool plans each once, generically, and a
    # filter written `$4 IS NULL OR actor_id = $4` is then one no index serves)
    last = LAST_ID if before is None else before
    if actor_id is not None and action is not None:
        records = await conn.fetch(
            AUDIT_BY_ACTOR_AND_ACTION, server_id, last, limit, actor_id, action
        )
    elif actor_id is not None:
        records = await conn.fetch(AUDIT_BY_ACTOR, server_id, last, limit, actor_id)
    elif action is not None:
        records = await conn.fetch(AUDIT_BY_ACTION, server_id, last, limit, action)
    else:
        records = await conn.fetch(AUDIT_ALL, server_id, last, limit)
    return [AuditRow(**dict(r)) for r in records]
