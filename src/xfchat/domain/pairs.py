"""The lock on what stands between two users: their friendship, a request, a block.

Every change of it (domain/friends.py) takes the pair's transaction-scoped advisory
lock, and so does every write that relies on it: putting people together in a
conversation (domain/conversations.py). A block, an unfriending or an acceptance and
such a write then come one wholly after the other: the later sees what the earlier
committed.

Lock order: the pairs' locks come before any user's other locks (the blocker's count,
the direct-message choices) and before rows of channels not already locked (a group's
row, locked first by the changes of its people, is the one exception: no change of a
pair takes it, and an account's deletion, which changes many, takes its groups' rows
before them). A transaction that takes several pairs takes them in one statement,
sorted by key, so two such never wait for each other in a circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg

from xfchat.db.queries import locks as locks_q


async def lock_pairs(conn: asyncpg.Connection, pairs: Iterable[tuple[UUID, UUID]]) -> None:
    """Wait for these pairs' locks, held until the transaction ends (a pair of one
    user with themself is left out)."""
    keys = sorted({locks_q.pair_key(a, b) for a, b in pairs if a != b})
    if keys:
        await locks_q.lock_transaction_all(conn, keys=keys)


async def lock_pairs_among(
    conn: asyncpg.Connection, newcomers: list[UUID], present: list[UUID]
) -> None:
    """The pairs of each newcomer with each of `present` and with each other."""
    others = list(dict.fromkeys([*present, *newcomers]))
    await lock_pairs(conn, ((n, o) for n in newcomers for o in others))
