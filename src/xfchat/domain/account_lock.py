"""The lock that keeps an account's deletion apart from every write that puts the
account somewhere: a server it creates or joins, a group it starts or is added to, a
server handed to it, a direct conversation or a friend request with it, a block it
makes.

Each user has a transaction-scoped advisory lock (the "account" namespace). The
deletion (domain/account_deletion.py) takes it exclusive; those writes take it shared,
for each account they put somewhere (several in one statement, sorted), and then
refuse an account deleted by then. So such a write comes wholly before the deletion
(which then takes the account out of it, or refuses, as for a server it owns) or
wholly after it (and is refused): never a deleted account in a server or a group, or
owning one.

Lock order: this is the first lock of every transaction that takes it, the deletion's
included. A transaction waiting for it holds nothing else, so nobody waits for it in
turn, and it never closes a circle of waits.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg

from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import users as users_q
from xfchat.domain.access import user_deleted
from xfchat.domain.accounts import Actor, session_ended

NAMESPACE = b"account"


async def lock_for_deletion(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Wait until no write holds the account's lock, and hold it alone until the
    transaction ends (the deletion's first lock)."""
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(NAMESPACE, user_id))


async def hold_accounts(
    conn: asyncpg.Connection, actor: Actor | None, others: Iterable[UUID] = ()
) -> None:
    """Share the locks of the actor's account (if given) and of `others` until the
    transaction ends, as its first lock; then refuse if one of them was deleted.

    Raises:
        Unauthorized: SESSION_REVOKED (the actor's own account was deleted).
        Forbidden: USER_DELETED (one of `others` was).
    """
    users = {*others, *([actor.user_id] if actor is not None else [])}
    keys = sorted({locks_q.advisory_key(NAMESPACE, u) for u in users})
    await locks_q.lock_transaction_shared_all(conn, keys=keys)
    deleted = await users_q.list_deleted_user_ids(conn, user_ids=sorted(users))
    if actor is not None and actor.user_id in deleted:
        raise session_ended()
    if deleted:
        raise user_deleted()
