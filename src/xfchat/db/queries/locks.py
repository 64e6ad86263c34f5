"""Liveness and advisory locks."""

from __future__ import annotations

import hashlib
from uuid import UUID

import asyncpg


def _key(data: bytes) -> int:
    """The first 8 bytes of SHA-256 of `data`, as a signed bigint."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big", signed=True)


def advisory_key(namespace: bytes, entity_id: UUID) -> int:
    """The advisory lock key of one thing (a user's sessions, presence, upload quota...):
    of the namespace and the id."""
    return _key(namespace + entity_id.bytes)


def name_key(namespace: bytes, name: str) -> int:
    """The advisory lock key of a name (a username's look, say), as advisory_key's."""
    return _key(namespace + name.encode())


def pair_key(a: UUID, b: UUID) -> int:
    """The advisory lock key of what stands between two users (a friendship, a request,
    a block), the same whichever of them comes first."""
    low, high = sorted((a, b))
    return _key(b"pair" + low.bytes + high.bytes)


async def select_one(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT 1"))


async def try_lock_session(conn: asyncpg.Connection, *, key: int) -> bool:
    """Take a session-level advisory lock (released by `unlock_session`), if it is free."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))


async def unlock_session(conn: asyncpg.Connection, *, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def lock_transaction(conn: asyncpg.Connection, *, key: int) -> None:
    """Wait for an advisory lock held until the current transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def try_lock_transaction(conn: asyncpg.Connection, *, key: int) -> bool:
    """Take an advisory lock held until the current transaction ends, if it is free."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", key))


async def lock_transaction_shared_all(conn: asyncpg.Connection, *, keys: list[int]) -> None:
    """Share each of `keys`' transaction-scoped advisory locks, in their order, in one
    round trip (others share them too; an exclusive holder waits, and is waited for)."""
    await conn.execute(
        """
        SELECT pg_advisory_xact_lock_shared(k)
        FROM unnest($1::bigint[]) WITH ORDINALITY AS x(k, i) ORDER BY i
        """,
        keys,
    )


async def lock_transaction_all(conn: asyncpg.Connection, *, keys: list[int]) -> None:
    """lock_transaction for each of `keys`, in their order (one round trip: a volatile
    function in the select list runs after the ORDER BY)."""
    await conn.execute(
        """
        SELECT pg_advisory_xact_lock(k)
        FROM unnest($1::bigint[]) WITH ORDINALITY AS x(k, i) ORDER BY i
        """,
        keys,
    )
